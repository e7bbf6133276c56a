-- Runs the demo: a private broker, a telemetry publisher and a subscriber,
-- each its own sts-lua process; prints what flows, then stops them all.
local sts = require "sts"
local test = require "sts.test"

local readings = 3
local broker = test.broker()
print(string.format("broker: mosquitto on 127.0.0.1:%d", broker.port))

local subscriber = test.spawn_script("scripts/telemetry-subscriber.lua",
  "--host", broker.host, "-p", broker.port, "--count", readings)
assert(subscriber:wait_for("subscribed"), "subscriber did not start:\n" .. subscriber:output())
local publisher = test.spawn_script("scripts/telemetry-publisher.lua",
  "--host", broker.host, "-p", broker.port, "--interval", 1, "--count", readings)

local ok = subscriber:wait(readings + 10)
publisher:wait(5)
print("--- publisher ---")
io.write(publisher:output())
print("--- subscriber ---")
io.write(subscriber:output())
publisher:kill()
subscriber:kill()
broker:stop()
test.cleanup()
if not ok then
  io.stderr:write("demo failed: the subscriber did not receive every reading\n")
  os.exit(1)
end
