"""Train and test a plugin or RecBole model: python run_recbole_spectral.py --model=SSR --dataset=ml-100k-mm"""
import sys

from recbole_spectral.cli import main

if __name__ == "__main__":
    sys.exit(main())
