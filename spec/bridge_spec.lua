-- Sessions across two mosquitto brokers bridged to each other, as a fleet
-- with several brokers carries them (docs/DEPLOY.md): the gateways on one
-- broker, the sensors on the other, joined by one bridge both ways or by one
-- bridge per direction, and two gateways sharing the sensors by topic
-- partition, each sensor served by exactly one.
local sts = require "sts"
local test = require "sts.test"

describe("sessions across bridged brokers", function()
  local near, far, dir, gw1, gw2, sensors
  local clients = {}

  local function connect(broker)
    local c = assert(sts.connect(broker:options()))
    clients[#clients + 1] = c
    return c
  end

  -- A gateway on the near broker (by default) for the sensors under prefix.
  local function gateway(id, prefix, trust, on_session, broker)
    return assert(sts.listen(connect(broker or near), { sub = prefix .. "/+/up", pub = prefix .. "/+/down",
      identity = id.key, trust = trust, timeout = 5 }, on_session))
  end

  -- A sensor on the far broker (by default): an IK handshake to the gateway it pins.
  local function sensor(prefix, id, gateway_id, broker)
    return sts.handshake(connect(broker or far), { role = "initiator", pub = prefix .. "/" .. id.name .. "/up",
      sub = prefix .. "/" .. id.name .. "/down", identity = id.key, peer = gateway_id.pub, timeout = 5 })
  end

  -- The bridges are up once a probe crosses each way.
  local function probe(from, to, topic)
    local probed
    assert(connect(to):subscribe(topic, function() probed = true end))
    test.until_subscribed(connect(from), topic, "0", function() return probed end)
  end
  local function until_bridged(gateways, sensors_broker)
    probe(sensors_broker, gateways, "probe/up")
    probe(gateways, sensors_broker, "probe/down")
  end

  -- A session through the bridges: 200 messages each way, each delivered
  -- once, then the sensor's KILL, authenticated, ends the gateway's side.
  local function session_through(gateways, sensors_broker)
    local up, down = test.tally(), test.tally()
    local gateway_side, closed
    local l = gateway(gw1, "plant/a", dir .. "/gateway-1.trust", function(s)
      gateway_side = s
      s:on("message", up.add)
      s:on("close", function(reason) closed = reason end)
    end, gateways)
    local s = assert(sensor("plant/a", sensors.a, gw1, sensors_broker))
    s:on("message", down.add)
    assert.truthy(test.wait_until(function() return gateway_side end))
    assert.equal(sensors.a.fingerprint, gateway_side.peer)
    for n = 1, 200 do
      assert(s:send(tostring(n)))
      assert(gateway_side:send(tostring(n)))
    end
    assert(up:all_once(200))
    assert(down:all_once(200))
    s:close("sensor going to sleep")
    assert.equal("sensor going to sleep", test.wait_until(function() return closed end))
    assert.truthy(test.wait_until(function() return l:stats().sessions == 0 end))
    l:close()
  end

  setup(function()
    near = test.broker()
    -- Only the session subtree crosses (and the probe), as a fleet's bridge
    -- carries its sessions' prefixes and nothing else.
    far = test.broker{ bridge = near, bridge_topics = { "plant/# both 1", "probe/# both 0" } }
    dir = test.tmpdir()
    gw1, gw2 = test.identity(dir, "gateway-1"), test.identity(dir, "gateway-2")
    sensors = { a = test.identity(dir, "sensor-a"), b = test.identity(dir, "sensor-b") }
    test.trust_file(dir .. "/gateway-1.trust", { sensors.a })
    test.trust_file(dir .. "/gateway-2.trust", { sensors.b })
    until_bridged(near, far)
  end)
  after_each(function()
    for _, c in ipairs(clients) do c:disconnect() end
    clients = {}
  end)
  teardown(function()
    far:stop()
    near:stop()
    test.cleanup()
  end)

  it("hand-shake, carry messages both ways once each, and close with an authenticated KILL", function()
    session_through(near, far)
  end)

  it("do the same over a bridge per direction, each started by the broker whose messages it carries", function()
    -- The layout docs/DEPLOY.md recommends: a mosquitto bridge at QoS 1 both
    -- ways stalls a request and its answer on Nagle's algorithm (~44 ms each
    -- way); one bridge per direction does not.
    local gateways = test.broker()
    local sensors_broker = test.broker{ bridge = gateways, bridge_topics = { "plant/+/+/up out 1", "probe/up out 0" } }
    gateways.bridge, gateways.bridge_topics = sensors_broker, { "plant/+/+/down out 1", "probe/down out 0" }
    gateways:restart()
    until_bridged(gateways, sensors_broker)
    session_through(gateways, sensors_broker)
    sensors_broker:stop()
    gateways:stop()
  end)

  it("let two gateways share the sensors by topic partition, each sensor served by one", function()
    local served = { [1] = {}, [2] = {} }
    local function record(n) return function(s) served[n][#served[n] + 1] = s.topic end end
    local l1 = gateway(gw1, "plant/a", dir .. "/gateway-1.trust", record(1))
    local l2 = gateway(gw2, "plant/b", dir .. "/gateway-2.trust", record(2))
    assert(sensor("plant/a", sensors.a, gw1))
    assert(sensor("plant/b", sensors.b, gw2))
    assert.truthy(test.wait_until(function() return #served[1] == 1 and #served[2] == 1 end))
    assert.same({ "plant/a/sensor-a/up" }, served[1])
    assert.same({ "plant/b/sensor-b/up" }, served[2])
    -- A sensor on the other partition's topics gets no session there: its
    -- name is not in that gateway's trust file, refused before any DH work.
    local jobs = l2:stats().handshake_jobs
    local s, err = sensor("plant/b", sensors.a, gw1)
    assert.is_nil(s)
    assert.matches("timeout", err)
    assert.same({ "plant/b/sensor-b/up" }, served[2])
    assert.equal(jobs, l2:stats().handshake_jobs)
    l1:close()
    l2:close()
  end)
end)
