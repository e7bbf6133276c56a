-- Lab protocol latency: the time from starting secure_mqtt_client to its
-- printed response, for one request with 4096-bit parameters through a
-- local mosquitto, with scripts/lab_responder.lua started once beforehand.
-- Run on demand (never by ctest), from the project root:
--
--   build/sts-lua bench/lab.lua [--count N] [--dhparam FILE] [--nodelay] [--gap S]
--
-- --dhparam: the group (default the RFC 3526 4096-bit group in
-- spec/fixtures); --nodelay: the broker with set_tcp_nodelay true (mosquitto
-- leaves Nagle's algorithm on by default); --gap: seconds between requests
-- (default 0.1). Prints min/median/max in ms.
local sts = require "sts"
local cli = require "sts.cli"
local test = require "sts.test"

local opts = cli.parse(arg, {
  usage = "sts-lua bench/lab.lua [--count N] [--dhparam FILE] [--nodelay] [--gap S]",
  positional = 0,
  options = {
    count = { "--count", number = true, default = 20 },
    dhparam = { "--dhparam", default = "spec/fixtures/rfc3526-modp4096.pem" },
    nodelay = { "--nodelay", flag = true },
    gap = { "--gap", number = true, default = 0.1 },
  },
})

local broker = test.broker{ config = opts.nodelay and { "set_tcp_nodelay true" } or nil }
local port = tostring(broker.port)
local responder = test.spawn_script("scripts/lab_responder.lua", "--host", "127.0.0.1", "-p", port,
  "--dhparam", opts.dhparam)
assert(responder:wait_for("serving"), responder:output())
sts.sleep(0.5) -- the responder's key pool fills

local client = table.concat({ test.quote(test.sts_lua()), "scripts/secure_mqtt_client.lua", "bench", "uppercase",
  "'hello lab'", "--host 127.0.0.1", "-p", port, "--dhparam", test.quote(opts.dhparam) }, " ")
local times = {}
for i = 1, opts.count do
  local started = sts.now()
  local p = io.popen(client)
  local line = p:read("l")
  local elapsed = (sts.now() - started) * 1000
  local ok = p:close()
  assert(ok and line == "HELLO LAB", "request " .. i .. " failed: " .. tostring(line))
  times[i] = elapsed
  sts.sleep(opts.gap) -- a pause between requests, as a user would make
end

responder:kill()
broker:stop()
test.cleanup()
table.sort(times)
print(string.format("lab request, %s, broker%s: %d runs, min %.1f ms, median %.1f ms, max %.1f ms",
  opts.dhparam, opts.nodelay and " with TCP_NODELAY" or "", #times, times[1],
  times[(#times + 1) // 2], times[#times]))
