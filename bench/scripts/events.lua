-- wrk script: every request is a distinct CloudEvent (binary mode) for a seeded row.
-- Arguments: KIND (recur | notify | peer-recur | peer-notify), FIRST id, BLOCK (ids per wrk thread).
-- Thread t sends ids FIRST + t*BLOCK, FIRST + t*BLOCK + 1, ...; `done` prints one JSON line.
local threads = {}

function setup(thread)
  thread:set("tindex", #threads)
  table.insert(threads, thread)
end

function init(args)
  kind = args[1]
  first = tonumber(args[2])
  block = tonumber(args[3])
  n = 0
end

function request()
  local id = first + tindex * block + n
  n = n + 1
  local uid = 1 + id % 1000
  local ty, ceid, body
  if kind == "recur" then
    ty = "dev.todo.recurring-task.due"
    ceid = string.format("recurring-task/%d/2026-11-01T08:00:00Z", id)
    body = string.format('{"recurring_task_id":%d,"user_id":%d,"occurrence_at":"2026-11-01T08:00:00Z"}', id, uid)
  elseif kind == "peer-recur" then
    -- The python-fastapi peer's event for the same work (bench/src/peer.rs).
    ty = "dev.todo.recurring.due"
    ceid = string.format("recurring/%d", id)
    body = string.format('{"recurring_task_id":%d}', id)
  elseif kind == "peer-notify" then
    ty = "dev.todo.reminder.due"
    ceid = string.format("reminder/%d", id)
    body = string.format('{"task_id":%d,"recipient":"user%d@bench.test","subject":"Reminder: Renew the passport %d","body":"Bring two photos."}', id, uid, id)
  else
    ty = "dev.todo.reminder.due"
    ceid = string.format("reminder/%d/2026-11-01T09:45:00Z", id)
    body = string.format('{"reminder_id":%d,"task_id":%d,"user_id":%d,"remind_at":"2026-11-01T09:45:00Z"}', id, id, uid)
  end
  local headers = {
    ["ce-specversion"] = "1.0",
    ["ce-type"] = ty,
    ["ce-source"] = "/bench",
    ["ce-id"] = ceid,
    ["content-type"] = "application/json",
  }
  return wrk.format("POST", "/", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
