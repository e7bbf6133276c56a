-- Runs the demo: a private broker, a gateway and a sensor (each its own
-- sts-lua process) exchanging telemetry over an end-to-end encrypted
-- session, and what the broker sees meanwhile; then stops them all.
local sts = require "sts"
local test = require "sts.test"
local keyfiles = require "sts.keyfiles"

local readings = 3
local broker = test.broker()
local dir = test.tmpdir()
print(string.format("broker: mosquitto on 127.0.0.1:%d", broker.port))

-- Identity keys for both ends; the gateway trusts the sensor's key, the
-- sensor pins the gateway's.
local function keypair(name)
  assert(keyfiles.write_pair(dir .. "/" .. name))
  return test.read_file(dir .. "/" .. name .. ".pub")
end
keypair("gateway")
-- The trust line names the sensor: the gateway takes its key on plant/sensor-7/ only.
test.write_file(dir .. "/sensors.trust", keypair("sensor"):match("\n(%x+)") .. " sensor-7\n")

-- The broker's view: everything published under plant/.
local seen = {}
local spy = assert(sts.connect(broker:options()))
spy:subscribe("plant/#", function(topic, payload)
  seen[#seen + 1] = string.format("  %-22s %4d bytes  %s...", topic, #payload,
    sts.hex(payload:sub(1, 16)))
end, { qos = 1 })

local gateway = test.spawn_script("scripts/secure-gateway.lua", "--host", broker.host, "-p", broker.port,
  "--identity", dir .. "/gateway.key", "--trust", dir .. "/sensors.trust", "--count", readings)
assert(gateway:wait_for("listening"), "gateway did not start:\n" .. gateway:output())
local sensor = test.spawn_script("scripts/secure-sensor.lua", "--host", broker.host, "-p", broker.port,
  "--identity", dir .. "/sensor.key", "--peer", dir .. "/gateway.pub", "--interval", 1, "--count", readings)

local code = gateway:wait(readings + 15)
sensor:wait(5)
print("--- sensor ---")
io.write(sensor:output())
print("--- gateway ---")
io.write(gateway:output())
print("--- what the broker saw (first 16 bytes of each payload) ---")
print(table.concat(seen, "\n"))
sensor:kill()
gateway:kill()
spy:disconnect()
broker:stop()
test.cleanup()
if code ~= 0 then
  io.stderr:write("demo failed: the gateway did not receive every reading\n")
  os.exit(1)
end
