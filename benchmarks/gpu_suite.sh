#!/bin/bash
# One-shot GPU suite: every accelerator figure of the project in one run, printed as one
# JSON object (and written to $OUT/gpu_suite.json when $OUT is set).
#
#   bash benchmarks/gpu_suite.sh --fetch    # here, with network: the wheels the GPU image
#                                           # lacks, into .whl/ (Python 3.12, manylinux)
#   bash benchmarks/gpu_suite.sh            # on the GPU machine (installs .whl/ if present)
#   bash benchmarks/gpu_suite.sh --quick    # CPU dry run of the plumbing at tiny sizes
#
# With the device tool: `run(command="bash benchmarks/gpu_suite.sh", carry=[".whl"],
# timeout_s=600)` after `--fetch` here (`echo /.whl/ >> .git/info/exclude` once).
#
# Sections (each its own benchmark script and JSON; a section that fails or runs past its
# share of the time is reported as {"error": ...} and the others still run):
#   train_step_float32 / _bfloat16  FixMatch step of WRN-28-2 at the reference batch
#                                   (64 labeled + 448 x 2 unlabeled) with MFU
#   ntk_wrn                         empirical NTK of WRN-28-2 at N = 256 vs neural-tangents
#   spectral                        the spectral table (bordered / features vs batched eigh)
#                                   and a 50,000-sample NPC acquisition
#   scale                           scale.py on one device
set -u
cd "$(dirname "$0")/.."

WHEELS=(neural-tangents==0.6.5 frozendict==2.4.6 dm-pix==0.4.4 ml-collections==1.1.0
        tensorboardX==2.6.4)

if [ "${1:-}" = "--fetch" ]; then
  mkdir -p .whl
  for wheel in "${WHEELS[@]}"; do
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d .whl "$wheel" || exit 1
  done
  ls -la .whl
  exit 0
fi

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
PYTHON=${PYTHON:-python3}
# the wheels are for the GPU image's Python 3.12; a dry run uses what this Python has
if [ $QUICK = 0 ] && [ -d .whl ] && ! $PYTHON -c "import importlib.util as u, sys
sys.exit(u.find_spec('neural_tangents') is None)"; then
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
WORK=$(mktemp -d)

# name, seconds, command...: the command's stdout must be one JSON object
section() {
  local name=$1 seconds=$2
  shift 2
  local started=$SECONDS
  timeout "$seconds" "$@" > "$WORK/$name.json" 2> "$WORK/$name.err"
  local status=$?
  echo "gpu_suite: $name exited $status after $((SECONDS - started)) s" >&2
  echo "$status" > "$WORK/$name.status"
}

if [ $QUICK = 1 ]; then
  section train_step_float32 300 $PYTHON benchmarks/train_step.py --batch 2 --mu 1 --steps 1 \
    --peak-size 256
  section train_step_bfloat16 300 $PYTHON benchmarks/train_step.py --batch 2 --mu 1 --steps 1 \
    --peak-size 256 --dtype bfloat16
  section ntk_wrn 300 $PYTHON benchmarks/ntk.py --models cnn --n 8 --nvp-n 4 --reps 1
  section spectral 300 $PYTHON benchmarks/spectral.py --quick
  section scale 300 $PYTHON benchmarks/scale.py --quick --devices 1
else
  # about 8 minutes in all on one H200, compilations included
  section train_step_float32 120 $PYTHON benchmarks/train_step.py --batch 64 --steps 10
  section train_step_bfloat16 120 $PYTHON benchmarks/train_step.py --batch 64 --steps 10 \
    --dtype bfloat16
  section ntk_wrn 100 $PYTHON benchmarks/ntk.py --models wrn-28-2 --wrn-n 256 --nvp-n 32 \
    --chunk-size 64 --reps 3
  section spectral 100 $PYTHON benchmarks/spectral.py --repeats 3
  section scale 60 $PYTHON benchmarks/scale.py --devices 1 --platform gpu
fi

$PYTHON - "$WORK" <<'EOF' | tee "${OUT:-$WORK}/gpu_suite.json"
import json, os, platform, sys
work = sys.argv[1]
result = {"env": {"python": platform.python_version()}}
try:
  import jax
  result["env"].update(jax=jax.__version__, backend=jax.default_backend(),
                       devices=[str(d) for d in jax.devices()])
except Exception as err:  # noqa: BLE001 - the environment line must not stop the report
  result["env"]["jax_error"] = repr(err)
for name in ("train_step_float32", "train_step_bfloat16", "ntk_wrn", "spectral", "scale"):
  status = int(open(os.path.join(work, f"{name}.status")).read())
  text = open(os.path.join(work, f"{name}.json")).read()
  if status == 0:
    try:
      result[name] = json.loads(text)
      continue
    except ValueError:
      pass
  err = open(os.path.join(work, f"{name}.err")).read().strip().splitlines()
  result[name] = {"error": "timed out" if status == 124 else f"exit {status}",
                  "stderr_tail": err[-5:]}
print(json.dumps(result, indent=1))
EOF
