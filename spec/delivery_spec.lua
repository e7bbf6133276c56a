-- Delivery accounting through a real mosquitto: `unacked` and client:flush()
-- stay exact when more publishes are outstanding than there are MQTT message
-- ids (65,535), with QoS 0 publishes sharing the ids; and plain QoS 2 with a
-- persistent session is delivered exactly once across a broker restart.
local sts = require "sts"
local test = require "sts.test"

local broker

setup(function() broker = test.broker() end)
teardown(function()
  broker:stop()
  test.cleanup()
end)

describe("delivery accounting", function()
  it("flushes 70,000 outstanding QoS 1 publishes with unacked back to 0", function()
    local total = 70000
    local rx = assert(sts.connect(broker:options{ client_id = "acct-rx" }))
    local got = test.tally()
    assert(rx:subscribe("acct/q1", got.handler, { qos = 1 }))
    local tx = assert(sts.connect(broker:options{ client_id = "acct-tx" }))
    test.until_subscribed(tx, "acct/q1", "0", function() return got.probed end)
    -- Published in one go, from the main chunk: none is acknowledged before
    -- the last has its id, so ids 1..4,465 are outstanding twice.
    for n = 1, total do assert(tx:publish("acct/q1", tostring(n), { qos = 1 })) end
    assert.is_true(tx:stats().unacked > 65535)
    assert.is_true(tx:flush(60))
    assert.equal(0, tx:stats().unacked)
    assert(got:all_once(total, 30))
    tx:disconnect()
    rx:disconnect()
  end)

  it("tells QoS 0 writes from QoS 1 acknowledgements when both use an id", function()
    local tx = assert(sts.connect(broker:options{ client_id = "acct-mixed" }))
    -- 66,000 QoS 1, then QoS 0 publishes whose ids are still outstanding at QoS 1.
    for n = 1, 66000 do assert(tx:publish("acct/mixed", tostring(n), { qos = 1 })) end
    for n = 1, 2000 do assert(tx:publish("acct/mixed0", tostring(n), { qos = 0 })) end
    assert.equal(66000, tx:stats().unacked)
    assert.is_true(tx:flush(60))
    assert.equal(0, tx:stats().unacked)
    tx:disconnect()
  end)
end)

describe("plain QoS 2 with a persistent session", function()
  it("is delivered exactly once across a broker restart", function()
    local total = 20000
    local opts = { client_id = "q2-rx", clean_session = false, reconnect = { min_delay = 0.1, max_delay = 0.5 } }
    local rx = assert(sts.connect(broker:options(opts)))
    local got = test.tally()
    assert(rx:subscribe("q2/seq", got.handler, { qos = 2 }))
    local tx = assert(sts.connect(broker:options{ client_id = "q2-tx", clean_session = false,
                                                  reconnect = { min_delay = 0.1, max_delay = 0.5 } }))
    test.until_subscribed(tx, "q2/seq", "0", function() return got.probed end)
    local n = 0
    local function send(upto)
      while n < upto do
        n = n + 1
        assert(tx:publish("q2/seq", tostring(n), { qos = 2 }))
        if n % 500 == 0 then sts.sleep(0.005) end
      end
    end
    send(total // 2)
    -- Restart while messages are in flight both ways.
    assert.truthy(test.wait_until(function() return got.count > total // 4 end, 30))
    broker:restart()
    send(total)
    assert.is_true(tx:flush(60))
    assert(got:all_once(total, 60))
    tx:disconnect()
    rx:disconnect()
  end)
end)
