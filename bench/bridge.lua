-- Latency a mosquitto bridge adds: publish to delivery of a QoS 0 message
-- through one broker, then from a broker bridged to it (the bridge of
-- test.broker{ bridge = ... }, as spec/bridge_spec.lua uses), median and
-- p95 of 300 messages sent one at a time.
--   STS_BUILD_DIR=build build/sts-lua bench/bridge.lua
local sts = require "sts"
local test = require "sts.test"
local near = test.broker()
local far = test.broker{ bridge = near }
local function rtt(pub_broker, sub_broker)
  local a = assert(sts.connect(pub_broker:options()))
  local b = assert(sts.connect(sub_broker:options()))
  local got
  assert(b:subscribe("lat/x", function(_, p) got = p end))
  test.until_subscribed(a, "lat/x", "0", function() return got end)
  local t = {}
  for i = 1, 300 do
    got = nil
    local t0 = sts.now()
    assert(a:publish("lat/x", tostring(i)))
    test.wait_until(function() return got == tostring(i) end, 5, 0.0001)
    t[#t + 1] = (sts.now() - t0) * 1000
  end
  table.sort(t)
  a:close(); b:close()
  return t[150], t[285]
end
print(string.format("one broker: median %.3f ms p95 %.3f", rtt(near, near)))
print(string.format("bridged:    median %.3f ms p95 %.3f", rtt(far, near)))
far:stop(); near:stop(); test.cleanup()
