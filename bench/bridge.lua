-- What a mosquitto bridge costs a session: the gateway on one broker, the
-- sensor on another, each message echoed back by the gateway, the round
-- trip timed in the sensor's message handler (median and p95 of N). Modes:
--   both   one bridge carrying the session's topics both ways at QoS 1
--   split  one bridge per direction (each started by the broker whose
--          messages it carries), QoS 1
-- set_tcp_nodelay on both brokers. docs/DEPLOY.md has the results.
--   STS_BUILD_DIR=build build/sts-lua bench/bridge.lua [N] [both|split]
local sts = require "sts"
local test = require "sts.test"
local N = tonumber(arg[1]) or 300
local mode = arg[2] or "split"
local nodelay = { "set_tcp_nodelay true" }
local near = test.broker{ config = nodelay }
local far
if mode == "split" then
  far = test.broker{ config = nodelay, bridge = near, bridge_topics = { "p/+/up out 1" } }
  near.bridge, near.bridge_topics = far, { "p/+/down out 1" }
  near:restart()
else
  far = test.broker{ config = nodelay, bridge = near, bridge_topics = { "p/# both 1" } }
end
local dir = test.tmpdir()
local gw, sn = test.identity(dir, "gw"), test.identity(dir, "s1")
test.trust_file(dir .. "/t", { sn })
local gc = assert(sts.connect(near:options()))
local l = assert(sts.listen(gc, { sub = "p/+/up", pub = "p/+/down", identity = gw.key, trust = dir .. "/t" },
  function(s) s:on("message", function(m) s:send(m) end) end))
local sc = assert(sts.connect(far:options()))
local s
test.wait_until(function()
  s = sts.handshake(sc, { role = "initiator", pub = "p/s1/up", sub = "p/s1/down", identity = sn.key, peer = gw.pub, timeout = 2 })
  return s
end, 20)
assert(s, "no session")
local got, stamp
s:on("message", function(m) got = m; stamp = sts.now() end)
local t = {}
for i = 1, N do
  got = nil
  local t0 = sts.now()
  assert(s:send(tostring(i)))
  assert(test.wait_until(function() return got == tostring(i) end, 5, 0.00005))
  t[#t + 1] = (stamp - t0) * 1000
end
table.sort(t)
print(string.format("%s: session echo across the bridge(s): median %.3f ms p95 %.3f (N=%d)", mode, t[#t // 2], t[math.floor(#t * 0.95)], N))
s:close(); l:close(); far:stop(); near:stop(); test.cleanup()
