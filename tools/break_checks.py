"""Each reference test fails when its part is broken: apply one deliberate break to a source file, run the test
that must catch it, put the file back; one line per case (CAUGHT = the test failed, MISSED = it passed).

    python tools/break_checks.py                 # every case (a few minutes)
    python tools/break_checks.py smore resume    # the cases whose name contains a word

It edits the working tree while a case runs (and restores the file even on an error or Ctrl-C): do not run it
while editing the same files. Results: docs/verification/references.md.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M = "recbole_spectral/model/"
L = "recbole_spectral/layers/"
CASES = [
 ("vbpr reg drops ‖q‖", M+"multimodal/vbpr.py", "reg = (u.norm() + p.norm() + q.norm())", "reg = (u.norm() + p.norm())", "tests/test_reference_mm.py::test_vbpr_forward_and_loss_equal_the_reference"),
 ("vbpr visual part halved", M+"multimodal/vbpr.py", "return torch.cat([self.item_embedding, self.item_linear(self.item_raw_features)], 1)", "return torch.cat([self.item_embedding, 0.5 * self.item_linear(self.item_raw_features)], 1)", "tests/test_reference_mm.py::test_vbpr_forward_and_loss_equal_the_reference"),
 ("freedom item graph half weight", M+"multimodal/freedom.py", "return out[: self.n_users], out[self.n_users:] + h", "return out[: self.n_users], out[self.n_users:] + 0.5 * h", "tests/test_reference_mm.py::test_freedom_forward_and_loss_equal_the_reference_on_the_full_and_the_pruned_graph"),
 ("freedom aux BPR swaps pos/neg", M+"multimodal/freedom.py", "aux = sum(bpr(u, self.projection[m](self.features[m][pos]), self.projection[m](self.features[m][neg]))", "aux = sum(bpr(u, self.projection[m](self.features[m][neg]), self.projection[m](self.features[m][pos]))", "tests/test_reference_mm.py::test_freedom_forward_and_loss_equal_the_reference_on_the_full_and_the_pruned_graph"),
 ("lgmrec global not normalised", M+"multimodal/lgmrec.py", "return local + self.alpha * F.normalize(global_, dim=1), hyper", "return local + self.alpha * global_, hyper", "tests/test_reference_mm.py::test_lgmrec_forward_and_loss_equal_the_reference"),
 ("lgmrec user InfoNCE dropped", M+"multimodal/lgmrec.py", "cl = cl + info_nce(ua[user], ub[user], ub, self.tau) + info_nce(ia[pos], ib[pos], ib, self.tau)", "cl = cl + info_nce(ia[pos], ib[pos], ib, self.tau)", "tests/test_reference_mm.py::test_lgmrec_forward_and_loss_equal_the_reference"),
 ("smore side sum not mean", M+"multimodal/smore.py", "side = torch.stack(sides, 0).mean(0)", "side = torch.stack(sides, 0).sum(0)", "tests/test_reference_mm.py::test_smore_forward_and_loss_equal_the_official_equations"),
 ("smore InfoNCE anchor/positive swapped", M+"multimodal/smore.py", "cl = (info_nce(side[items], content[items],", "cl = (info_nce(content[items], side[items],", "tests/test_reference_mm.py::test_smore_forward_and_loss_equal_the_official_equations"),
 ("smore gate without sigmoid-filter (raw projection)", M+"multimodal/smore.py", "views = [self._item_view(self.item_graphs[m], item_id * self.item_gate[m](self.filter[m](x)))", "views = [self._item_view(self.item_graphs[m], item_id * self.item_gate[m](x))", "tests/test_reference_mm.py::test_smore_forward_and_loss_equal_the_official_equations"),
 ("ssr band weights unbounded", L+"multimodal/hsno.py", "weights = 1.0 + self.weight_range * torch.tanh(logits)", "weights = 1.0 + torch.tanh(logits)", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
 ("ssr consistency on detached z removed", M+"multimodal/ssr.py", "consistency = F.mse_loss(masked, z.detach())", "consistency = F.mse_loss(masked, z.detach()) * 0.5", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
 ("ssr late item graph twice", M+"multimodal/ssr.py", "return torch.cat([signal[: self.n_users], items + smoothed], 0)", "return torch.cat([signal[: self.n_users], items + 2 * smoothed], 0)", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
 ("ssr pref reg sum over users", M+"multimodal/ssr.py", "self.user_preference[m][batch_users].pow(2).sum(1).mean()", "self.user_preference[m][batch_users].pow(2).sum(1).sum()", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
 ("spectramb global/residual weights swapped", M+"multibehavior/spectramb.py", "return self.fused_weight * fused + self.global_weight * purified_global + self.residual_weight * raw_global", "return self.fused_weight * fused + self.residual_weight * purified_global + self.global_weight * raw_global", "tests/test_reference_mb.py::test_spectramb_forward_and_loss_equal_the_reference"),
 ("spectramb context filter ignores context", L+"feature_fft.py", "per_node = self.complex_weight() * (1 + torch.view_as_complex(delta.contiguous()))", "per_node = self.complex_weight() * (1 + 0 * torch.view_as_complex(delta.contiguous()))", "tests/test_reference_mb.py::test_spectramb_forward_and_loss_equal_the_reference"),
 ("spectramb extra views start from the previous behavior view, not their own", M+"multibehavior/spectramb.py", "start = previous if base is None else done[base]", "start = previous", "tests/test_reference_mb.py::test_spectramb_forward_and_loss_equal_the_reference"),
 ("mbcgcn warm-up epoch loss: sum of batches, not their mean", M+"multibehavior/mbcgcn.py", "losses.append(total / max(steps, 1))", "losses.append(total)", "tests/test_reference_mb.py::test_mbcgcn_warmup_equals_adam_on_the_first_behavior_lightgcn_bpr"),
 ("history term β without 2σ", L+"multibehavior/history_term.py", "return self.weight * 2 * torch.sigmoid(self.reliability(users))", "return self.weight * torch.sigmoid(self.reliability(users))", "tests/test_history_term.py::test_every_model_adds_the_term_to_its_scores"),
 ("crgcn history term left out of the target loss", M+"multibehavior/crgcn.py", "loss = loss + bpr(self.pair_scores(u, item_e[pos], users, pos), self.pair_scores(u, item_e[neg], users, neg))", "loss = loss + bpr((u * item_e[pos]).sum(-1), (u * item_e[neg]).sum(-1))", "tests/test_history_term.py::test_the_term_learns_and_is_removed_exactly_at_inference"),
 ("crgcn no row normalisation", M+"multibehavior/crgcn.py", "current = current + F.normalize(hidden, p=2, dim=1)", "current = current + hidden", "tests/test_reference_mb.py::test_crgcn_forward_and_loss_equal_the_cascade_reference"),
 ("crgcn reg over n_users", M+"multibehavior/crgcn.py", "reg = (self.user_embedding.weight.norm(p=2) + self.item_embedding.weight.norm(p=2)) / self.n_items", "reg = (self.user_embedding.weight.norm(p=2) + self.item_embedding.weight.norm(p=2)) / self.n_users", "tests/test_reference_mb.py::test_crgcn_forward_and_loss_equal_the_cascade_reference"),
 ("mbcgcn L2 not halved", M+"multibehavior/mbcgcn.py", "return sum(t.pow(2).sum() for t in tensors) / (2.0 * batch)", "return sum(t.pow(2).sum() for t in tensors) / batch", "tests/test_reference_mb.py::test_mbcgcn_forward_and_loss_equal_the_cascade_reference"),
 ("mbcgcn item map used for users", M+"multibehavior/mbcgcn.py", "current = torch.cat([users @ self.user_maps[k - 1], items @ self.item_maps[k - 1]], dim=0)", "current = torch.cat([users @ self.item_maps[k - 1], items @ self.item_maps[k - 1]], dim=0)", "tests/test_reference_mb.py::test_mbcgcn_forward_and_loss_equal_the_cascade_reference"),
 ("mule layers unweighted", M+"multibehavior/mule.py", "out = out + current / (layer + 1)", "out = out + current", "tests/test_reference_mb.py::test_mule_forward_and_loss_equal_the_reference"),
 ("mule attention softmax over receivers' senders", L+"multibehavior/target_attention.py", "e = torch.exp(scores - peak[self.rows])", "e = torch.exp(0.5 * (scores - peak[self.rows]))", "tests/test_reference_mb.py::test_mule_forward_and_loss_equal_the_reference"),
 ("historypop popularity not below 1", M+"multibehavior/historypop.py", "counts / (counts.max() + 1.0)", "counts / counts.max()", "tests/test_reference_mb.py::test_historypop_scores_equal_stage_plus_scaled_popularity"),
 ("cascadingrank item update scaled by 0.9 γ", M+"multibehavior/cascadingrank.py", "self.step, self.step_t = _csr32(step, device), _csr32(step.T, device)", "self.step, self.step_t = _csr32(step, device), _csr32(step.T * 0.9, device)", "tests/test_reference_mb.py::test_cascadingrank_scores_are_the_fixed_points_of_its_iteration"),
 ("ghsno norm not restored", L+"multimodal/hsno.py", "fused = fused * target_norm / fused.norm(dim=1, keepdim=True).clamp_min(self.eps)", "fused = fused", "tests/test_reference_blocks.py::test_ghsno_forward_equals_the_dense_operator"),
 ("ghsno dropped band may win the gate", L+"multimodal/hsno.py", "logits = logits.masked_fill(keep <= 0, float(\"-inf\"))", "logits = logits", "tests/test_reference_blocks.py::test_ghsno_forward_equals_the_dense_operator"),
 ("ghsno regulariser not averaged over M²", L+"multimodal/hsno.py", "return (self.query @ self.key.T).pow(2).sum() / (m * m)", "return (self.query @ self.key.T).pow(2).sum() / m", "tests/test_reference_blocks.py::test_ghsno_regulariser_is_the_kernel_and_gain_energy"),
 ("released operator row softmax", L+"multimodal/hsno.py", "return torch.softmax(self.kernel_logits(), dim=0)", "return torch.softmax(self.kernel_logits(), dim=1)", "tests/test_reference_blocks.py::test_released_operator_equals_the_dense_reference_and_its_regulariser"),
 ("per-band InfoNCE without band negatives", M+"multimodal/ssr.py", "logits = torch.cat([other_items, other_bands / self.temperature], 1)", "logits = other_items", "tests/test_reference_blocks.py::test_per_band_infonce_has_its_closed_form"),
 ("feature attention without ×d", L+"multibehavior/fusion.py", "return torch.stack([self.dim * w * v for w, v in zip(weights, views)], dim=0).mean(0)", "return torch.stack([w * v for w, v in zip(weights, views)], dim=0).mean(0)", "tests/test_reference_blocks.py::test_global_context_attention_equals_its_formula_with_non_zero_scores"),
 ("feature attention without tanh", L+"multibehavior/fusion.py", "scores = [score(torch.tanh(hidden(query)))", "scores = [score(hidden(query))", "tests/test_reference_blocks.py::test_global_context_attention_equals_its_formula_with_non_zero_scores"),
]
T = "recbole_spectral/training_state.py"
CASES += [
 ("resume without torch's global RNG state (SMORE dropout)", T, 'torch.set_rng_state(rng["torch"].cpu())', 'pass', "tests/test_training_state.py::test_a_killed_run_resumes_exactly[SMORE]"),
 ("resume without torch's global RNG state (SSR band masks)", T, 'torch.set_rng_state(rng["torch"].cpu())', 'pass', "tests/test_training_state.py::test_a_killed_run_resumes_exactly[SSR]"),
 ("resume without the model-held generators (SSR edge pruning)", T, 'generators[name].set_state(value.cpu())', 'pass', "tests/test_training_state.py::test_a_killed_run_resumes_exactly[SSR]"),
 ("resume without the optimiser state", T, "trainer.optimizer.load_state_dict(state[\"optimizer\"])", "pass", "tests/test_training_state.py::test_a_killed_run_resumes_exactly[FREEDOM]"),
]
CASES += [
 ("rank 1 keeps its own band borders (no sync with the broadcast buffer)", M+"multimodal/ssr.py", """        if self._cached_borders is None or not torch.equal(self._cached_borders, self.band_borders):
            self.bands.set_borders""", """        if False:
            self.bands.set_borders""", "tests/test_distributed.py::test_ddp_gradient_of_ssr_on_two_halves_equals_the_single_process_gradient_of_the_whole_batch"),
 ("CPU ranks without DDP (no gradient all-reduce)", "recbole_spectral/distributed.py", "self.distributed_model = DistributedDataParallel(self.model)  # ... and wrap for CPU", "self.distributed_model = self.model", "tests/test_distributed.py::test_two_process_gloo_ssr_replicas_end_identical_and_test_like_a_single_process"),
]
CASES += [
 ("historypop keeps only the last auxiliary behavior", M+"multibehavior/historypop.py", "stage = m if stage is None else stage.maximum(m)", "stage = m", "tests/test_mb_dataset.py::test_historypop_hits_the_viewed_test_items_at_1_through_the_trainer_and_a_reloaded_checkpoint"),
 ("historypop stage order reversed", M+"multibehavior/historypop.py", 'k = position + 1 if self.stage_order == "latest_first" else n_aux - position', 'k = n_aux - position if self.stage_order == "latest_first" else position + 1', "tests/test_mb_dataset.py::test_historypop_hits_the_viewed_test_items_at_1_through_the_trainer_and_a_reloaded_checkpoint"),
 ("spectramb output-weight test: attention without ×d", L+"multibehavior/fusion.py", "return torch.stack([self.dim * w * v for w, v in zip(weights, views)], dim=0).mean(0)", "return torch.stack([w * v for w, v in zip(weights, views)], dim=0).mean(0)", "tests/test_spectramb.py::test_output_weights_mix_the_terms_as_stated"),
]
CASES += [
 ("crgcn empty behavior batch not special-cased", M+"multibehavior/crgcn.py", "if pos_scores.numel() == 0:", "if pos_scores.numel() == 1:", "tests/test_reference_mb.py::test_crgcn_behavior_without_pairs_in_the_batch_adds_nothing"),
 ("spectramb cascade starts every view from E^(0)", M+"multibehavior/spectramb.py", "            start = previous if base is None else done[base]", "            start = ego if base is None else done[base]", "tests/test_reference_mb.py::test_spectramb_forward_and_loss_equal_the_reference"),
 ("spectramb removed view not zeroed", M+"multibehavior/spectramb.py", "views = [torch.zeros_like(v) if i == self._removed_view else v for i, v in enumerate(views)]", "views = [v for i, v in enumerate(views)]", "tests/test_reference_mb.py::test_spectramb_view_removed_at_inference_is_the_reference_without_that_view"),
 ("lgmrec training memberships at temperature 1", M+"multimodal/lgmrec.py", "return F.gumbel_softmax(logits, tau=self.tau, dim=1, hard=False)", "return F.gumbel_softmax(logits, dim=1, hard=False)", "tests/test_reference_mm.py::test_lgmrec_training_memberships_are_the_gumbel_softmax_at_temperature_tau"),
]
CASES += [
 ("cascadingrank converged users keep iterating", M+"multibehavior/cascadingrank.py", "                    keep = running.to(d_u.dtype)", "                    keep = torch.ones_like(d_u[0])", "tests/test_reference_mb.py::test_cascadingrank_stops_each_user_at_its_own_convergence_or_at_max_iter"),
 ("mbcgcn warm-up reg subtracted", M+"multibehavior/mbcgcn.py", "loss = loss + self.reg_weight * self._l2(params[0][user]", "loss = loss - self.reg_weight * self._l2(params[0][user]", "tests/test_reference_mb.py::test_mbcgcn_warmup_equals_adam_on_the_first_behavior_lightgcn_bpr"),
 ("mule without auxiliary behaviors calls the graph attention", M+"multibehavior/mule.py", "final = self.graph_attention(coarse, fine) if fine else coarse", "final = self.graph_attention(coarse, fine)", "tests/test_reference_mb.py::test_mule_with_the_target_behavior_alone_is_its_behavior_view"),
 ("historypop without auxiliary behaviors counts target rows as a stage", M+"multibehavior/historypop.py", "stage = dataset.behavior_matrix(dataset.target_behavior) * 0.0", "stage = dataset.behavior_matrix(dataset.target_behavior) * 1.0", "tests/test_reference_mb.py::test_historypop_without_auxiliary_behaviors_ranks_by_popularity_alone"),
]
CASES += [
 ("per-band InfoNCE: band negatives multiplied by τ (SSR reference)", M+"multimodal/ssr.py", "logits = torch.cat([other_items, other_bands / self.temperature], 1)", "logits = torch.cat([other_items, other_bands * self.temperature], 1)", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
 ("per-band InfoNCE: band negatives multiplied by τ (closed form)", M+"multimodal/ssr.py", "logits = torch.cat([other_items, other_bands / self.temperature], 1)", "logits = torch.cat([other_items, other_bands * self.temperature], 1)", "tests/test_reference_blocks.py::test_per_band_infonce_has_its_closed_form"),
]
CASES += [
 ("ssr G-HSNO ignores the band mask", M+"multimodal/ssr.py", "return [self.hsno(bands, keep)[0] for keep in keeps]", "return [self.hsno(bands, None)[0] for keep in keeps]", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
 ("ssr sum fusion ignores the band mask", M+"multimodal/ssr.py", "return [(bands if keep is None else bands * keep.unsqueeze(-1)).sum(1) for keep in keeps]", "return [bands.sum(1) for keep in keeps]", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
 ("ssr score_masked consistency as an element mean", M+"multimodal/ssr.py", "consistency = (z - full).pow(2).sum(1).mean()", "consistency = (z - full).pow(2).mean()", "tests/test_reference_mm.py::test_ssr_forward_and_loss_equal_the_reference"),
]
only = sys.argv[1:]
env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
for name, path, old, new, test in CASES:
    if only and not any(o in name for o in only):
        continue
    full = os.path.join(ROOT, path)
    src = open(full).read()
    if src.count(old) != 1:
        print(f"SETUP {name}: pattern found {src.count(old)} times"); continue
    try:
        open(full, "w").write(src.replace(old, new))
        r = subprocess.run(["nice", "-n", "5", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test], cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        open(full, "w").write(src)
    print(f"{'CAUGHT' if r.returncode == 1 else 'MISSED' if r.returncode == 0 else 'rc=%d' % r.returncode}  {name}  ({path}; {test.split('::')[1]})", flush=True)
