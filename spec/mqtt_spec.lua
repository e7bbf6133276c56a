-- Plain MQTT through a real mosquitto: sts.connect, subscriptions, QoS,
-- retain, will, persistent sessions, reconnect, TLS and authentication.
local sts = require "sts"
local test = require "sts.test"

-- Collects what a handler receives; :wait(n) runs the loop until n arrived.
local function inbox()
  local box = { messages = {} }
  function box.handler(topic, payload, info)
    box.messages[#box.messages + 1] = { topic = topic, payload = payload, info = info }
  end
  function box:wait(n, timeout)
    return test.wait_until(function() return #self.messages >= n end, timeout or 5)
  end
  return box
end

describe("plain MQTT", function()
  local broker

  setup(function() broker = test.broker() end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  describe("sts.connect", function()
    it("connects and reports its client id", function()
      local c = assert(sts.connect(broker:options{ client_id = "plain-1" }))
      assert.is_true(c:connected())
      assert.equal("plain-1", c:id())
      c:disconnect()
      assert.is_false(c:connected())
    end)

    it("generates a client id when none is given", function()
      local a = assert(sts.connect(broker:options()))
      local b = assert(sts.connect(broker:options()))
      assert.matches("^sts%-%x+$", a:id())
      assert.not_equal(a:id(), b:id())
      a:disconnect()
      b:disconnect()
    end)

    it("returns nil and a reason for a port nobody listens on", function()
      local c, err = sts.connect{ host = "127.0.0.1", port = 1, timeout = 2 }
      assert.is_nil(c)
      assert.matches("refused", err)
    end)

    it("gives up within the timeout on a server that never answers", function()
      local port = math.random(20000, 59999)
      local silent = test.spawn("exec nc -l 127.0.0.1 " .. port)
      sts.sleep(0.3)
      local started = sts.now()
      local c, err = sts.connect{ host = "127.0.0.1", port = port, timeout = 1 }
      local elapsed = sts.now() - started
      silent:kill()
      assert.is_nil(c)
      assert.matches("timed out", err)
      assert.is_true(elapsed >= 0.9 and elapsed < 3, "took " .. elapsed .. " s")
    end)

    it("returns an error for a host name that does not resolve", function()
      local c, err = sts.connect{ host = "no-such-host.invalid", timeout = 3 }
      assert.is_nil(c)
      assert.is_string(err)
    end)

    it("refuses unknown and mistyped options, naming them", function()
      assert.has_error(function() sts.connect{ hots = "localhost" } end, "sts.connect: unknown option 'hots'")
      assert.has_error(function() sts.connect{ port = "many" } end, "option 'port' must be an integer, got string")
      assert.has_error(function() sts.connect{ keepalive = true } end, "option 'keepalive' must be an integer, got boolean")
      assert.has_error(function() sts.connect{ protocol = "4" } end)
      assert.has_error(function() sts.connect{ port = 70000 } end, "option 'port' must be from 1 to 65535")
      assert.has_error(function() sts.connect{ tls = { cafil = "x" } } end, "tls: unknown option 'cafil'")
      assert.has_error(function() sts.connect{ clean_session = false } end)
    end)
  end)

  describe("publish and subscribe", function()
    local c

    before_each(function() c = assert(sts.connect(broker:options())) end)
    after_each(function() c:disconnect() end)

    for qos = 0, 2 do
      it("round-trips a message at QoS " .. qos, function()
        local box = inbox()
        assert(c:subscribe("rt/" .. qos, box.handler, { qos = qos }))
        sts.sleep(0.1)
        assert(c:publish("rt/" .. qos, "payload " .. qos, { qos = qos }))
        assert.truthy(box:wait(1))
        assert.equal("payload " .. qos, box.messages[1].payload)
        assert.equal(qos, box.messages[1].info.qos)
      end)
    end

    it("loses none of the QoS 0 messages it sent just before closing, with its own input unread", function()
      -- The sender also subscribes, so its socket holds unread messages when
      -- it closes; a socket closed so is reset, and a reset broker connection
      -- drops what the broker had not read yet.
      local N = 20000
      local count, done = 0, sts.future()
      local counter = assert(sts.connect(broker:options()))
      assert(counter:subscribe("burst", function(_, payload)
        count = count + 1
        if payload == "last" then done:set(true) end
      end))
      local sender = assert(sts.connect(broker:options()))
      assert(sender:subscribe("burst", function() end))
      assert(counter:flush(5) and sender:flush(5))
      for i = 1, N - 1 do assert(sender:publish("burst", "message " .. i)) end
      assert(sender:publish("burst", "last"))
      assert(sender:flush(10))
      sender:close()
      assert.truthy(done:wait(20))
      assert.equal(N, count)
      counter:close()
    end)

    it("carries binary payloads unchanged", function()
      local box = inbox()
      local blob = {}
      for i = 0, 255 do blob[#blob + 1] = string.char(i) end
      blob = table.concat(blob) .. "\0\0end"
      assert(c:subscribe("bin", box.handler, { qos = 1 }))
      sts.sleep(0.1)
      assert(c:publish("bin", blob, { qos = 1 }))
      assert.truthy(box:wait(1))
      assert.equal(blob, box.messages[1].payload)
    end)

    it("dispatches each message to every handler whose filter matches", function()
      local plus, hash, exact, other = inbox(), inbox(), inbox(), inbox()
      assert(c:subscribe("w/+/temp", plus.handler))
      assert(c:subscribe("w/#", hash.handler))
      assert(c:subscribe("w/a/temp", exact.handler))
      assert(c:subscribe("x/#", other.handler))
      sts.sleep(0.1)
      assert(c:publish("w/a/temp", "1"))
      assert(c:publish("w/b/temp", "2"))
      assert(c:publish("w/b/humidity", "3"))
      assert.truthy(hash:wait(3))
      sts.sleep(0.1)
      assert.equal(2, #plus.messages)
      assert.equal(3, #hash.messages)
      assert.equal(1, #exact.messages)
      assert.equal(0, #other.messages)
    end)

    it("stops delivering after unsubscribe", function()
      local box = inbox()
      assert(c:subscribe("unsub", box.handler))
      sts.sleep(0.1)
      assert(c:publish("unsub", "before"))
      assert.truthy(box:wait(1))
      assert(c:unsubscribe("unsub"))
      sts.sleep(0.1)
      assert(c:publish("unsub", "after"))
      sts.sleep(0.3)
      assert.equal(1, #box.messages)
      local ok, err = c:unsubscribe("never-subscribed")
      assert.is_nil(ok)
      assert.matches("not subscribed", err)
    end)

    it("keeps many subscriptions on one client", function()
      local box = inbox()
      for i = 1, 200 do assert(c:subscribe("many/" .. i, box.handler, { qos = 1 })) end
      sts.sleep(0.3)
      for i = 1, 200 do assert(c:publish("many/" .. i, tostring(i), { qos = 1 })) end
      assert.truthy(box:wait(200))
      local seen = {}
      for _, m in ipairs(box.messages) do seen[m.topic] = m.payload end
      for i = 1, 200 do assert.equal(tostring(i), seen["many/" .. i]) end
    end)

    it("delivers a retained message to a later subscriber", function()
      assert(c:publish("retained/x", "kept", { qos = 1, retain = true }))
      sts.sleep(0.2)
      local late = assert(sts.connect(broker:options()))
      local box = inbox()
      assert(late:subscribe("retained/#", box.handler))
      assert.truthy(box:wait(1))
      assert.equal("kept", box.messages[1].payload)
      assert.is_true(box.messages[1].info.retain)
      late:disconnect()
    end)

    it("refuses payloads over max_payload and invalid topics", function()
      local small = assert(sts.connect(broker:options{ max_payload = 16 }))
      local ok, err = small:publish("big", string.rep("x", 17))
      assert.is_nil(ok)
      assert.matches("max_payload", err)
      assert.truthy(small:publish("big", string.rep("x", 16)))
      ok, err = small:publish("bad/+/topic", "x")
      assert.is_nil(ok)
      assert.matches("invalid topic", err)
      assert.has_error(function() small:publish("t", "x", { qos = 3 }) end, "option 'qos' must be 0, 1 or 2")
      assert.has_error(function() small:publish("t", "x", { retian = true }) end, "publish: unknown option 'retian'")
      assert.has_error(function() small:publish("t", "x", { content_type = "a" }) end)
      small:disconnect()
    end)

    it("passes MQTT 5 properties", function()
      local v5 = assert(sts.connect(broker:options{ protocol = "5" }))
      local box = inbox()
      assert(v5:subscribe("props", box.handler, { qos = 1 }))
      sts.sleep(0.1)
      assert(v5:publish("props", "{}", {
        qos = 1, content_type = "application/json", response_topic = "props/reply",
        correlation_data = "\1\2\3", user_properties = { { "site", "plant-7" }, { "site", "backup" } },
      }))
      assert.truthy(box:wait(1))
      local p = box.messages[1].info.properties
      assert.equal("application/json", p.content_type)
      assert.equal("props/reply", p.response_topic)
      assert.equal("\1\2\3", p.correlation_data)
      assert.same({ { "site", "plant-7" }, { "site", "backup" } }, p.user_properties)
      v5:disconnect()
    end)
  end)

  describe("handlers", function()
    it("survive an error in a message handler: it is logged and counted", function()
      local c = assert(sts.connect(broker:options()))
      local box = inbox()
      local before = sts.stats().handler_errors
      assert(c:subscribe("boom", function(_, payload)
        if payload == "bad" then error("handler failed on purpose") end
        box.handler("boom", payload)
      end))
      sts.sleep(0.1)
      assert(c:publish("boom", "bad"))
      assert(c:publish("boom", "good"))
      assert.truthy(box:wait(1))
      assert.equal("good", box.messages[1].payload)
      assert.equal(before + 1, sts.stats().handler_errors)
      c:disconnect()
    end)

    it("cannot wait inside a handler, but can in a task", function()
      local c = assert(sts.connect(broker:options()))
      local inside_error, task_result
      assert(c:subscribe("wait", function()
        local ok, err = pcall(sts.sleep, 0.01)
        inside_error = not ok and err
        sts.task(function()
          sts.sleep(0.05)
          task_result = "slept"
        end)
      end))
      sts.sleep(0.1)
      assert(c:publish("wait", "x"))
      assert.truthy(test.wait_until(function() return task_result end, 3))
      assert.matches("use sts.task", inside_error)
      c:disconnect()
    end)
  end)

  describe("sessions and reconnects", function()
    it("sends the will when a client dies", function()
      local watcher = assert(sts.connect(broker:options()))
      local box = inbox()
      assert(watcher:subscribe("wills/#", box.handler))
      local script = test.tmpdir() .. "/dies.lua"
      test.write_file(script, string.format([[
        local sts = require "sts"
        local c = assert(sts.connect{ port = %d, keepalive = 5, will = { topic = "wills/dead", payload = "gone", qos = 1 } })
        print("connected")
        sts.run()
      ]], broker.port))
      local p = test.spawn_script(script)
      assert.truthy(p:wait_for("connected"))
      p:kill("KILL")
      assert.truthy(box:wait(1))
      assert.equal("gone", box.messages[1].payload)
      watcher:disconnect()
    end)

    it("keeps a persistent session: QoS 1 messages sent while away arrive on return", function()
      local opts = broker:options{ client_id = "persistent-1", clean_session = false }
      local sub = assert(sts.connect(opts))
      assert(sub:subscribe("persist/#", function() end, { qos = 1 }))
      sts.sleep(0.2)
      sub:disconnect()

      local pub = assert(sts.connect(broker:options()))
      for i = 1, 5 do assert(pub:publish("persist/" .. i, "m" .. i, { qos = 1 })) end
      sts.sleep(0.2)
      pub:disconnect()

      -- The broker delivers the queued messages right after CONNACK, before
      -- the script can subscribe again: the handler must be in place early.
      local box = inbox()
      local back = assert(sts.connect(opts))
      assert(back:subscribe("persist/#", box.handler, { qos = 1 }))
      assert.truthy(box:wait(5))
      local got = {}
      for _, m in ipairs(box.messages) do got[#got + 1] = m.payload end
      table.sort(got)
      assert.same({ "m1", "m2", "m3", "m4", "m5" }, got)
      back:disconnect()
    end)

    it("hands a new subscriber the kept messages before one that arrives in the same turn", function()
      local opts = broker:options{ client_id = "persistent-order", clean_session = false }
      local first = assert(sts.connect(opts))
      assert(first:subscribe("order/t", function() end, { qos = 1 }))
      first:disconnect()
      local pub = assert(sts.connect(broker:options()))
      for i = 1, 2 do assert(pub:publish("order/t", "kept " .. i, { qos = 1 })) end
      assert(pub:flush(5))
      -- Back, with no subscriber yet: the two queued messages are kept.
      local back = assert(sts.connect(opts))
      assert.truthy(test.wait_until(function() return back:stats().messages_in == 2 end))
      -- A second subscriber, whose copy of the next message says the broker
      -- has sent it to `back` too: mosquitto_sub ends on its second message,
      -- the first being a probe that shows it subscribed.
      local sub = test.spawn(string.format("mosquitto_sub -h 127.0.0.1 -p %d -t order/probe -t order/t -C 2 -v", broker.port))
      assert(test.wait_until(function()
        assert(pub:publish("order/probe", "probe"))
        return sub:output():find("order/probe", 1, true)
      end, 10, 0.1), "mosquitto_sub did not subscribe")
      -- Written at once, and in back's socket before its loop next runs,
      -- when the new subscriber first gets the two kept messages.
      assert(pub:publish("order/t", "new 3", { qos = 1 }))
      local box = inbox()
      assert(back:subscribe("order/t", box.handler, { qos = 1 }))
      local deadline = os.time() + 10
      while sub:alive() and os.time() <= deadline do os.execute("sleep 0.01") end -- not running this loop
      assert.is_false(sub:alive(), "mosquitto_sub did not see the message")
      assert.truthy(box:wait(3))
      local got = {}
      for _, m in ipairs(box.messages) do got[#got + 1] = m.payload end
      assert.same({ "kept 1", "kept 2", "new 3" }, got)
      back:disconnect()
      pub:disconnect()
    end)

    it("reconnects after a broker restart, resubscribes and delivers QoS 1 sent meanwhile", function()
      local events = {}
      local c = assert(sts.connect(broker:options{ reconnect = { min_delay = 0.2, max_delay = 1 } }))
      c:on("disconnect", function(reason, reconnecting) events[#events + 1] = "down:" .. tostring(reconnecting) end)
      c:on("connect", function() events[#events + 1] = "up" end)
      local box = inbox()
      assert(c:subscribe("restart/#", box.handler, { qos = 1 }))
      sts.sleep(0.1)
      broker:stop()
      assert.truthy(test.wait_until(function() return not c:connected() end, 5))
      -- Published while the broker is down: kept, and sent after the reconnect.
      assert(c:publish("restart/queued", "while-down", { qos = 1 }))
      local ok, err = c:publish("restart/lost", "qos0", { qos = 0 })
      assert.is_nil(ok)
      assert.matches("not currently connected", err)
      broker:start()
      assert.truthy(test.wait_until(function() return c:connected() end, 10))
      assert.truthy(box:wait(1, 5))
      assert.equal("while-down", box.messages[1].payload)
      assert(c:publish("restart/after", "after", { qos = 1 }))
      assert.truthy(box:wait(2))
      assert.same({ "down:true", "up" }, events)
      c:disconnect()
    end)
  end)
end)

describe("authentication", function()
  local broker

  setup(function() broker = test.broker{ users = { alice = "s3cret" } } end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  it("accepts the right username and password", function()
    local c = assert(sts.connect(broker:options{ username = "alice", password = "s3cret" }))
    c:disconnect()
  end)

  it("refuses a wrong password and an anonymous client", function()
    local c, err = sts.connect(broker:options{ username = "alice", password = "wrong" })
    assert.is_nil(c)
    assert.matches("not authorised", err:lower())
    c, err = sts.connect(broker:options())
    assert.is_nil(c)
    assert.is_string(err)
  end)
end)

describe("TLS to the broker", function()
  local broker

  setup(function() broker = test.broker{ tls = true } end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  it("connects when the broker's certificate verifies against the CA", function()
    local c = assert(sts.connect(broker:options()))
    local box = inbox()
    assert(c:subscribe("tls", box.handler, { qos = 1 }))
    sts.sleep(0.1)
    assert(c:publish("tls", "over tls", { qos = 1 }))
    assert.truthy(box:wait(1))
    c:disconnect()
  end)

  it("refuses a broker whose certificate another CA signed", function()
    local other = test.make_certificates(test.tmpdir(), "other")
    local c, err = sts.connect(broker:options{ tls = { cafile = other.cafile } })
    assert.is_nil(c)
    assert.is_string(err)
  end)

  it("refuses a TLS option that makes no sense", function()
    assert.has_error(function() sts.connect(broker:options{ tls = { certfile = "x", cafile = broker.ca } }) end)
  end)
end)
