#!/usr/bin/env bash
# Re-record what follows the shipped default model: the bit-identical baselines of tests/test_bit_identical.py (and the outputs themselves, for CPUs that round otherwise),
# the CI gate baseline (tests/baselines/sample_inputs_summary.csv) and docs/examples.png. Run after a deliberate
# change of the default's outputs (a new shipped model), on 2 CPU threads, from the repository root; say so in the commit.
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
base=tests/baselines
srin harmonize sample_inputs -o "$out/model" -q >/dev/null
srin harmonize sample_inputs -o "$out/torch" -q --backend torch >/dev/null
srin evaluate sample_inputs -o "$out/eval" -q --report "$out/eval/report.html"
(cd "$out/model" && sha256sum *) > $base/sample_inputs_harmonize_model.sha256
(cd "$out/torch" && sha256sum *) > $base/sample_inputs_harmonize_torch.sha256
(cd "$out/eval" && sha256sum per_image.csv report.png summary.csv) > $base/sample_inputs_evaluate_model.sha256
cp "$out/eval/summary.csv" $base/sample_inputs_summary.csv
rm -rf $base/sample_inputs_outputs && mkdir $base/sample_inputs_outputs
cp "$out"/model/*.png "$out/eval/per_image.csv" $base/sample_inputs_outputs/
cp "$out/eval/report.png" docs/examples.png
echo "re-recorded $base/*model*.sha256, *torch*.sha256, sample_inputs_summary.csv, sample_inputs_outputs/ and docs/examples.png"
