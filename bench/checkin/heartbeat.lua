-- wrk script: POST /v1/heartbeat/ID/SECRET rotating over the instances
-- listed in $VA_BENCH_IDS ("ID SECRET" per line, from checkin_seed).
local creds = {}
for line in io.lines(os.getenv("VA_BENCH_IDS")) do
  local id, secret = line:match("^(%S+) (%S+)$")
  if id then creds[#creds + 1] = "/v1/heartbeat/" .. id .. "/" .. secret end
end
local threads = 0
local i = 0
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  -- each thread starts at its own place in the list
  thread:set("start", threads * 7919)
  threads = threads + 1
end

function init(args)
  i = start or 0
end

function request()
  i = i + 1
  return wrk.format("POST", creds[(i % #creds) + 1], headers, '{"busy": false}')
end
