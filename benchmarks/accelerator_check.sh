#!/usr/bin/env bash
# Every accelerator check in one run of at most SECONDS (default 390), each group of
# parts in its own process under `timeout`, so that a crash, a hang or running out of
# memory in one group never stops the next. Writes OUT/accelerator_check.json (all
# groups merged) and OUT/accelerator_check.log. See benchmarks/accelerator_check.py.
#
#   bash benchmarks/accelerator_check.sh OUT [SECONDS] [MODE]
#
# MODE "all" (the default) runs every check; "step" the YOLOv2-VOC bf16 step study
# (benchmarks/step_study.py: the kernel profile, OUT/step_kernels.md and OUT/step_trace,
# then the candidates and the XLA:GPU flag sets), in 8 minutes with SECONDS=470; "study"
# a slice of a study's accelerator profile (CHECK_STUDY, default heads: every row, seed 0,
# CHECK_STUDY_STEPS steps, default 500), its rows' measured rates and the whole
# profile's estimated time, in 8 minutes with SECONDS=470.
#
# Python packages the machine lacks (Keras, for the side-by-side bench) may be carried
# as wheels in .whl/; they are installed into /tmp/site first.
set -u
out=${1:?usage: bash benchmarks/accelerator_check.sh OUT [SECONDS] [MODE]}
budget=${2:-390}
mode=${3:-all}
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/accelerator_check.log"
: >"$log"
py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
export CHECK_OUT="$out"
# Parts start the study and the Keras bench as child processes: no process may hold
# most of the GPU memory up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if ls .whl/*.whl >/dev/null 2>&1; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl 2>&1 | tail -3 | tee -a "$log"
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
scratch=$(mktemp -d)
start=$(date +%s)
group() {  # group NAME PARTS SECONDS
  local left=$((budget - ($(date +%s) - start)))
  local secs=$3
  ((secs > left)) && secs=$left
  if ((secs < 20)); then
    echo "[$1] skipped: out of time" | tee -a "$log"
    return
  fi
  echo "[$1] $2 (at most ${secs} s)" | tee -a "$log"
  timeout -k 10 "$secs" "$py" -m benchmarks.accelerator_check --parts "$2" \
    --json "$scratch/$1.json" --seconds $((secs - 10)) --workdir "$scratch/work" \
    ${TINY:+--tiny} 2>&1 | tee -a "$log"
  echo "[$1] exit ${PIPESTATUS[0]} after $(($(date +%s) - start)) s" | tee -a "$log"
}
# NAME:PARTS:SECONDS, most wanted first; CHECK_GROUPS overrides (the tests run a few parts).
case $mode in
  all) groups="correctness:env,ops,losses,postprocess,train_step,runners:110 \
    bench:bench:150 study:study:80 pytest:pytest:45 keras:keras_bench:120" ;;
  step) groups="step:env,step_profile,step_candidates:330 flags:step_flags:140" ;;
  study) groups="study_profile:env,study_profile:$budget" ;;
  *) echo "accelerator_check.sh: MODE is all, step or study, not $mode" >&2; exit 2 ;;
esac
for g in ${CHECK_GROUPS:-$groups}; do
  IFS=: read -r name parts secs <<<"$g"
  group "$name" "$parts" "$secs"
done
"$py" - "$scratch" "$out/accelerator_check.json" <<'PY' 2>&1 | tee -a "$log"
import glob, json, os, sys
merged = {"groups": {}}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    name = os.path.basename(path)[:-5]
    try:
        with open(path) as f:
            merged["groups"][name] = json.load(f)
    except (OSError, ValueError) as err:
        merged["groups"][name] = {"error": f"unreadable: {err}"}
with open(sys.argv[2], "w") as f:
    json.dump(merged, f, indent=1)
status = {g: {p: r.get("status") for p, r in v.get("parts", {}).items()}
          for g, v in merged["groups"].items()}
print("accelerator_check:", json.dumps(status))
PY
echo "accelerator_check: $(($(date +%s) - start)) s in all" | tee -a "$log"
