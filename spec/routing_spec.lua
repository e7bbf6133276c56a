-- Message routing and object lifetime below the Lua line: several subscribers
-- per filter (a script's own subscription never steals a session's frames),
-- objects closed from inside their own callbacks, and finalizers that run no
-- script code. Cases that once crashed or hung run in their own sts-lua
-- process, so a regression fails one test rather than the whole file.
local sts = require "sts"
local test = require "sts.test"

-- Runs `source` (formatted with the extra arguments) as a script in its own
-- process; returns the process once it ended, or fails if it hangs.
local function run_script(source, ...)
  local script = test.tmpdir() .. "/script.lua"
  test.write_file(script, "local sts = require 'sts'\n" .. string.format(source, ...))
  local p = test.spawn_script(script)
  assert(p:wait(15), "the script hung:\n" .. p:output())
  return p
end

local function assert_clean_exit(p, expected)
  assert.equal(0, p:exit_code(), p:output())
  assert.matches(expected, p:output())
  assert.is_nil(p:output():find("error", 1, true), p:output())
  assert.is_nil(p:output():find("AddressSanitizer", 1, true), p:output())
end

describe("message routing and object lifetime", function()
  local broker, dir, alice, bob

  local function identity(name) return test.identity(dir, name) end

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    alice, bob = identity("alice"), identity("bob")
    test.write_file(dir .. "/bob.trust", alice.hex .. " alice\n")
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  -- A session between two clients of this process: bob responds in a task,
  -- alice initiates. Returns both ends and both clients.
  local function session_pair(topic)
    local bc = assert(sts.connect(broker:options()))
    local ac = assert(sts.connect(broker:options()))
    local responder
    sts.task(function()
      responder = assert(sts.handshake(bc, { role = "responder", pub = topic .. "/down", sub = topic .. "/up",
        identity = bob.key, trust = dir .. "/bob.trust" }))
    end)
    local initiator = assert(sts.handshake(ac, { role = "initiator", pub = topic .. "/up", sub = topic .. "/down",
      identity = alice.key, peer = bob.pub }))
    assert.truthy(test.wait_until(function() return responder and responder:state() == "established" end))
    return initiator, responder, ac, bc
  end

  describe("several subscribers to one filter", function()
    it("calls every handler subscribed to a filter, and unsubscribe(filter, fn) removes only fn", function()
      local c = assert(sts.connect(broker:options()))
      local a, b = {}, {}
      local function fa(_, payload) a[#a + 1] = payload end
      local function fb(_, payload) b[#b + 1] = payload end
      assert(c:subscribe("share/t", fa))
      assert(c:subscribe("share/t", fb, { qos = 1 }))
      assert(c:publish("share/t", "one"))
      assert.truthy(test.wait_until(function() return #a == 1 and #b == 1 end))
      assert(c:unsubscribe("share/t", fa))
      assert(c:publish("share/t", "two", { qos = 1 }))
      assert.truthy(test.wait_until(function() return #b == 2 end))
      assert.same({ "one" }, a)
      assert.same({ "one", "two" }, b)
      local ok, err = c:unsubscribe("share/t", fa)
      assert.is_nil(ok)
      assert.matches("not subscribed", err)
      c:disconnect()
    end)

    it("keeps one broker subscription per filter: a handler subscribed twice is called once", function()
      local c = assert(sts.connect(broker:options()))
      local got = {}
      local function f(_, payload) got[#got + 1] = payload end
      assert(c:subscribe("twice/t", f))
      assert(c:subscribe("twice/t", f, { qos = 1 }))
      assert(c:publish("twice/t", "once", { qos = 1 }))
      assert(c:publish("twice/t", "marker", { qos = 1 }))
      assert.truthy(test.wait_until(function() return got[#got] == "marker" end))
      assert.same({ "once", "marker" }, got)
      c:disconnect()
    end)

    it("never lets a script's subscription to a session's topic steal its frames", function()
      local initiator, responder, ac, bc = session_pair("steal")
      local raw, plain = {}, {}
      local function spy(_, frame) raw[#raw + 1] = frame end
      responder:on("message", function(text) plain[#plain + 1] = text end)
      assert(bc:subscribe("steal/up", spy))
      -- long markers: a short one would turn up in random ciphertext now and then
      local function marker(i) return "steal-marker-" .. i end
      for i = 1, 3 do assert(initiator:send(marker(i))) end
      assert.truthy(test.wait_until(function() return #plain == 3 and #raw >= 3 end))
      assert.same({ marker(1), marker(2), marker(3) }, plain)
      for _, frame in ipairs(raw) do -- the spy sees ciphertext, never a plaintext it carries
        for i = 1, 3 do assert.is_nil(frame:find(marker(i), 1, true)) end
      end
      assert(bc:unsubscribe("steal/up"))
      local seen = #raw
      assert(initiator:send("m4"))
      assert.truthy(test.wait_until(function() return #plain == 4 end))
      assert.equal(seen, #raw)
      ac:disconnect()
      bc:disconnect()
    end)

    it("never lets a script's subscription to a listener's filter steal its frames", function()
      local gateway = assert(sts.connect(broker:options()))
      local got, raw = {}, 0
      local listener = assert(sts.listen(gateway, { sub = "fleet/+/up", pub = "fleet/+/down",
        identity = bob.key, trust = dir .. "/bob.trust" }, function(session)
          session:on("message", function(text) got[#got + 1] = text end)
        end))
      assert(gateway:subscribe("fleet/+/up", function() raw = raw + 1 end))
      local sensor = assert(sts.connect(broker:options()))
      local s = assert(sts.handshake(sensor, { role = "initiator", pub = "fleet/alice/up", sub = "fleet/alice/down",
        identity = alice.key, peer = bob.pub }))
      assert(s:send("reading"))
      assert.truthy(test.wait_until(function() return #got == 1 end))
      assert.same({ "reading" }, got)
      assert.is_true(raw >= 2) -- the handshake frames and the reading, seen in passing
      listener:close()
      sensor:disconnect()
      gateway:disconnect()
    end)
  end)

  describe("closing from inside a callback", function()
    it("frees a client closed by its own error handler while a reconnect attempt times out", function()
      local port = broker.port
      local victim = assert(sts.connect(broker:options()))
      victim:disconnect()
      local script = [[
        local c = assert(sts.connect{ port = %d, timeout = 0.5, reconnect = { min_delay = 0.5, max_delay = 0.5 } })
        print("connected"); io.stdout:flush()
        local errors = 0
        c:on("error", function(why) errors = errors + 1; print("lost: " .. why); c:close() end)
        c:on("disconnect", function() print("disconnected"); io.stdout:flush() end)
        sts.run(6)
        print("closed after " .. errors .. " failed attempt")
      ]]
      local path = test.tmpdir() .. "/timeout.lua"
      test.write_file(path, "local sts = require 'sts'\n" .. string.format(script, port))
      local p = test.spawn_script(path)
      assert.truthy(p:wait_for("connected"))
      broker:stop()
      assert.truthy(p:wait_for("disconnected"))
      -- A server that accepts and never answers: the attempt times out.
      local silent = test.spawn("exec nc -l 127.0.0.1 " .. port)
      assert.truthy(p:wait(15), p:output())
      silent:kill()
      assert.truthy(broker:start())
      assert_clean_exit(p, "closed after 1 failed attempt")
      assert.matches("lost: ", p:output())
    end)

    it("disconnects a client from inside its own message handler without hanging", function()
      local p = run_script([[
        local c = assert(sts.connect{ port = %d })
        c:subscribe("self/t", function() c:disconnect(); print("disconnected in the handler") end)
        c:publish("self/t", "x")
        sts.sleep(1)
        print("done", c:connected())
      ]], broker.port)
      assert_clean_exit(p, "disconnected in the handler.*done\tfalse")
    end)

    it("closes a client from inside a session's message handler and a listener's session handler", function()
      local p = run_script([[
        local gateway = assert(sts.connect{ port = %d })
        sts.listen(gateway, { sub = "cl/+/up", pub = "cl/+/down", identity = %q, trust = %q }, function(session)
          session:on("message", function(text) print("got " .. text); gateway:close() end)
        end)
        local sensor = assert(sts.connect{ port = %d })
        local s = assert(sts.handshake(sensor, { role = "initiator", pub = "cl/alice/up", sub = "cl/alice/down",
          identity = %q, peer = %q }))
        s:on("close", function() print("sensor session closed") end)
        s:send("reading")
        sts.sleep(1)
        local other = assert(sts.connect{ port = %d })
        sts.listen(other, { sub = "cl2/+/up", pub = "cl2/+/down", identity = %q, trust = %q }, function(session)
          other:close(); print("closed from on_session")
        end)
        assert(sts.handshake(sensor, { role = "initiator", pub = "cl2/alice/up", sub = "cl2/alice/down",
          identity = %q, peer = %q, timeout = 2 }))
        sts.sleep(0.5)
        print("done")
      ]], broker.port, bob.key, dir .. "/bob.trust", broker.port, alice.key, bob.pub,
        broker.port, bob.key, dir .. "/bob.trust", alice.key, bob.pub)
      assert_clean_exit(p, "got reading.*closed from on_session.*done")
    end)

    it("closes a session from inside its own message handler, and unsubscribes a handler from inside itself", function()
      local initiator, responder, ac, bc = session_pair("selfclose")
      local got = {}
      responder:on("message", function(text)
        got[#got + 1] = text
        responder:close()
        collectgarbage() -- nothing the engine still uses may go
      end)
      assert(initiator:send("first"))
      assert(initiator:send("second"))
      assert.truthy(test.wait_until(function() return initiator:state() == "closed" end))
      assert.same({ "first" }, got)
      assert.equal("closed", responder:state())
      local n = 0
      local function once() n = n + 1; ac:unsubscribe("unsub/t", once) end
      assert(ac:subscribe("unsub/t", once))
      local marker = false
      assert(ac:subscribe("unsub/marker", function() marker = true end))
      assert(ac:publish("unsub/t", "a", { qos = 1 }))
      assert(ac:publish("unsub/t", "b", { qos = 1 }))
      assert(ac:publish("unsub/marker", "after b", { qos = 1 })) -- arrives after b
      assert.truthy(test.wait_until(function() return marker end))
      assert.equal(1, n)
      ac:disconnect()
      bc:disconnect()
    end)
  end)

  describe("at exit", function()
    it("runs no close handler on a session already finalized", function()
      local p = run_script([[
        local gateway = assert(sts.connect{ port = %d })
        sts.listen(gateway, { sub = "exit/+/up", pub = "exit/+/down", identity = %q, trust = %q }, function(session)
          session:on("close", function() print("gateway saw " .. session.topic .. " close") end)
        end)
        local sensor = assert(sts.connect{ port = %d })
        local s = assert(sts.handshake(sensor, { role = "initiator", pub = "exit/alice/up", sub = "exit/alice/down",
          identity = %q, peer = %q }))
        s:on("close", function(why) print("closed " .. s.topic .. ": " .. why) end)
        sts.sleep(0.3)
        print("leaving")
      ]], broker.port, bob.key, dir .. "/bob.trust", broker.port, alice.key, bob.pub)
      assert_clean_exit(p, "leaving")
    end)
  end)

  it("hands a session's message to its handler straight from the loop, with no Lua frame between", function()
    local initiator, responder, ac, bc = session_pair("direct")
    local caller
    responder:on("message", function()
      caller = debug.getinfo(2, "f").func
      sts.stop()
    end)
    assert(initiator:send("x"))
    sts.run(5)
    assert.equal(sts.run, caller)
    ac:disconnect()
    bc:disconnect()
  end)
end)
