"""The installed wheel carries the properties and the console script (not only the checkout)."""
import subprocess
import sys
import zipfile

from tests.helpers import ROOT


def test_wheel_ships_properties_and_finds_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = list((tmp_path / "dist").glob("recbole_spectral-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.relative_to(ROOT / "properties").as_posix() for p in (ROOT / "properties").rglob("*") if p.is_file())
    assert shipped and all(f"recbole_spectral/properties/{name}" in names for name in shipped)
    assert any(n.endswith("entry_points.txt") for n in names)
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "recbole_spectral").rglob("*.py"))
    assert [m for m in modules if m not in names] == []  # every subpackage is listed in pyproject
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = subprocess.run(
        [sys.executable, "-c", "from recbole_spectral import paths; print(paths.properties_dir())"],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""}, capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(target / "recbole_spectral" / "properties")
    assert (target / "bin" / "recbole-spectral").is_file()
