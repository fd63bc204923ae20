#!/usr/bin/env bash
# `make run`: migrate, seed the demo, upsert the schedules, then the development web server and
# the django-q2 worker side by side in this terminal. One Ctrl-C stops both; if either exits on
# its own, the other is stopped too, so no worker is left running without its web server.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${VENV:-.venv}/bin/python
addr=${HOST:-127.0.0.1}:${PORT:-8000}

# Development settings. DATABASE_URL and REDIS_URL pass through when set; unset means
# db.sqlite3 beside manage.py, a file cache in var/ and the database as the task queue.
export DEBUG=1
export EMAIL_BACKEND=${EMAIL_BACKEND:-django.core.mail.backends.console.EmailBackend}
export SITE_URL=${SITE_URL:-http://$addr}
export PYTHONUNBUFFERED=1

echo "==> migrate"
"$py" manage.py migrate --noinput
echo "==> seed_demo"
"$py" manage.py seed_demo
echo "==> setup_schedules"
"$py" manage.py setup_schedules

# Job control puts each child in its own process group: Ctrl-C reaches only this script, which
# then signals each whole group. That also catches grandchildren (runserver's autoreload child,
# qcluster's sentinel, monitor and workers) that would otherwise outlive their parent.
set -m
pgids=()
stopping=0

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_children() {
  ((stopping)) && return 0
  stopping=1
  local pgid tick
  echo
  echo "==> stopping the web server and the worker"
  for pgid in "${pgids[@]}"; do kill -INT -- "-$pgid" 2>/dev/null || true; done
  # qcluster finishes the task in hand before it exits; give it a few seconds, then insist.
  for ((tick = 0; tick < 100; tick++)); do
    local alive=0
    for pgid in "${pgids[@]}"; do group_alive "$pgid" && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pgid in "${pgids[@]}"; do
    if group_alive "$pgid"; then
      echo "==> process group $pgid did not stop in 10 s: killing it"
      kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
}

trap 'stop_children; exit 0' INT
trap 'stop_children; exit 143' TERM HUP
trap 'stop_children' EXIT

echo "==> web server on http://$addr/ and task worker (Ctrl-C stops both)"
"$py" manage.py runserver "$addr" </dev/null &
pgids+=("$!")
"$py" manage.py qcluster </dev/null &
pgids+=("$!")

status=0
wait -n || status=$?
echo "==> a process exited (status $status)"
exit "$status"
