#!/bin/bash
# Start script for the chat_stream function under the AWS Lambda Web Adapter (the function's
# handler). LWA (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this, waits for the app on $PORT and
# streams its responses (AWS_LWA_INVOKE_MODE=response_stream).
# /var/task holds app.py and its bundled deps (uvicorn); /opt/python is the gateway layer.
set -euo pipefail
cd "${LAMBDA_TASK_ROOT:-$(dirname "$0")}"
export PATH="$PATH:$PWD/bin"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}:/opt/python${LAMBDA_RUNTIME_DIR:+:$LAMBDA_RUNTIME_DIR}"
exec python -m uvicorn app:app --host 0.0.0.0 --port "${PORT:-8080}" --no-access-log
