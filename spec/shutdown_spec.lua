-- The clean shutdown (docs/API.md, "Shutdown"): a real sts-lua gateway, with a
-- listener, a session with this process and a client with a will, ends on
-- SIGTERM or SIGINT with exit status 0; this side's session gets the KILL,
-- the broker publishes no will, and the QoS 1 messages still queued at the
-- signal arrive.
local sts = require "sts"
local test = require "sts.test"
local keyfiles = require "sts.keyfiles"

local function identity(dir, name)
  local id = { key = dir .. "/" .. name .. ".key", pub = dir .. "/" .. name .. ".pub" }
  keyfiles.write_pair(dir .. "/" .. name)
  id.hex = test.read_file(id.pub):match("\n(%x+)")
  return id
end

-- The gateway: a listener for sd/+/up, a will on sd/will; prints "ready PID"
-- from the loop (the scripts here all do: SIGTERM, SIGINT and SIGHUP get
-- the built-in handling only while the loop runs, so a signal sent on an
-- earlier "ready" could do what it does outside the loop, and end them).
-- On SIGUSR1 it queues `bulk` QoS 1 messages and has SIGTERM sent to itself
-- by another process before the loop has had a turn to send them.
local GATEWAY = [[
local sts = require "sts"
io.stdout:setvbuf("line")
local port, key, trust, bulk = tonumber(arg[1]), arg[2], arg[3], tonumber(arg[4])
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("n")
f:close()
local client = assert(sts.connect{ port = port, client_id = "sd-gateway",
                                   will = { topic = "sd/will", payload = "gateway lost" } })
sts.listen(client, { sub = "sd/+/up", pub = "sd/+/down", identity = key, trust = trust }, function(session)
  print("session " .. session.topic)
  session:on("close", function(reason) print("closed " .. reason) end)
end)
sts.signal("USR1", function()
  for i = 1, bulk do assert(client:publish("sd/bulk", "m" .. i, { qos = 1 })) end
  print("queued " .. client:stats().unacked)
  os.execute("kill -TERM " .. pid)
end)
assert(client:flush(5))
sts.after(0, function() print("ready " .. pid) end)
sts.run()
print("must not get here: the shutdown exits")
]]

describe("the clean shutdown", function()
  local broker, dir, bob, alice, script
  local spawned = {}

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    bob = identity(dir, "bob")
    alice = identity(dir, "alice")
    test.write_file(dir .. "/bob.trust", alice.hex .. " alice\n")
    script = dir .. "/gateway.lua"
    test.write_file(script, GATEWAY)
  end)
  after_each(function()
    for _, p in ipairs(spawned) do p:kill("KILL") end
    spawned = {}
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  -- A gateway and a session to it from here; returns the process, its pid,
  -- the session, what it saw close, and a watcher of the will topic.
  local function start(bulk)
    local watcher = assert(sts.connect(broker:options()))
    local seen = { will = {}, bulk = 0 }
    watcher:subscribe("sd/will", function(_, payload) seen.will[#seen.will + 1] = payload end, { qos = 1 })
    watcher:subscribe("sd/bulk", function() seen.bulk = seen.bulk + 1 end, { qos = 1 })
    assert(watcher:flush(5))
    -- A background job starts with SIGINT ignored, and an ignored signal is
    -- left so: env gives the gateway the SIGINT a service or a terminal would.
    local p = test.spawn(string.format("env --default-signal=INT %s %s %d %s %s %d", test.quote(test.sts_lua()),
      test.quote(script), broker.port, test.quote(bob.key), test.quote(dir .. "/bob.trust"), bulk or 0))
    spawned[#spawned + 1] = p
    local pid = tonumber(p:wait_for("ready (%d+)\n"))
    assert.truthy(pid, p:output())
    local sensor = assert(sts.connect(broker:options()))
    local s, err = sts.handshake(sensor, { role = "initiator", pub = "sd/alice/up", sub = "sd/alice/down",
      identity = alice.key, peer = bob.pub })
    assert(s, tostring(err) .. "\n" .. p:output())
    local closed = {}
    s:on("close", function(reason) closed.reason = reason end)
    assert.truthy(p:wait_for("session sd/alice/up\n"), p:output())
    return { p = p, pid = pid, session = s, closed = closed, seen = seen, watcher = watcher, sensor = sensor }
  end

  -- No will came: a message published after the gateway's end arrives, and
  -- the broker would have sent the will before it.
  local function assert_no_will(g)
    assert(g.watcher:publish("sd/will", "marker", { qos = 1 }))
    assert.truthy(test.wait_until(function() return g.seen.will[1] end))
    assert.same({ "marker" }, g.seen.will)
  end

  local function finish(g)
    g.sensor:close()
    g.watcher:close()
  end

  for _, signal in ipairs({ "TERM", "INT" }) do
    it("ends on SIG" .. signal .. " with status 0, a KILL to the peer and no will", function()
      local g = start()
      assert.truthy(os.execute(string.format("kill -%s %d", signal, g.pid)))
      assert.equal(0, g.p:wait(15), g.p:output())
      assert.truthy(test.wait_until(function() return g.closed.reason end), g.p:output())
      assert.equal("shutdown", g.closed.reason)
      assert.matches("closed shutdown\n", g.p:output())
      assert.matches("SIG" .. signal .. ": shutting down: 1 sessions, 1 listeners, 0 groups, 1 clients", g.p:output())
      assert.matches("SIG" .. signal .. ": shut down cleanly", g.p:output())
      assert.not_matches("must not get here", g.p:output())
      assert_no_will(g)
      finish(g)
    end)
  end

  it("delivers the QoS 1 messages still queued when SIGTERM came", function()
    local bulk = 500
    local g = start(bulk)
    assert.truthy(os.execute(string.format("kill -USR1 %d", g.pid)))
    assert.equal(0, g.p:wait(15), g.p:output())
    -- The signal came with most of them neither written nor acknowledged.
    local queued = tonumber(g.p:output():match("queued (%d+)\n"))
    assert.equal(bulk, queued)
    local to_flush = tonumber(g.p:output():match("SIGTERM: shutting down: .-(%d+) QoS 1/2 messages to flush"))
    assert.truthy(to_flush and to_flush > 100, g.p:output())
    assert.truthy(test.wait_until(function() return g.seen.bulk >= bulk end), g.seen.bulk .. " of " .. bulk)
    assert.equal(bulk, g.seen.bulk)
    assert.equal("shutdown", g.closed.reason)
    assert_no_will(g)
    finish(g)
  end)

  it("leaves SIGTERM to a handler of the script's own, which may hand over with sts.shutdown", function()
    local path = dir .. "/own.lua"
    test.write_file(path, string.format([[
      local sts = require "sts"
      io.stdout:setvbuf("line")
      local client = assert(sts.connect{ port = %d, will = { topic = "sd/will", payload = "own lost" } })
      sts.signal("TERM", function(name) print("own handler " .. name); sts.shutdown(1) end)
      local f = assert(io.open("/proc/self/stat"))
      print("ready " .. f:read("n"))
      sts.run()
    ]], broker.port))
    local watcher = assert(sts.connect(broker:options()))
    local wills = {}
    watcher:subscribe("sd/will", function(_, payload) wills[#wills + 1] = payload end, { qos = 1 })
    assert(watcher:flush(5))
    local p = test.spawn_script(path)
    spawned[#spawned + 1] = p
    local pid = tonumber(p:wait_for("ready (%d+)\n"))
    assert.truthy(pid, p:output())
    assert.truthy(os.execute("kill -TERM " .. pid))
    assert.equal(0, p:wait(15), p:output())
    assert.matches("own handler TERM\n", p:output())
    assert.matches("sts.shutdown: shutting down: 0 sessions, 0 listeners, 0 groups, 1 clients", p:output())
    assert(watcher:publish("sd/will", "marker", { qos = 1 }))
    assert.truthy(test.wait_until(function() return wills[1] end))
    assert.same({ "marker" }, wills)
    watcher:close()
  end)

  it("shuts down from the main chunk with sts.shutdown(), delivering what is queued", function()
    local watcher = assert(sts.connect(broker:options()))
    local got = {}
    watcher:subscribe("sd/main", function(_, payload) got[#got + 1] = payload end, { qos = 1 })
    assert(watcher:flush(5))
    local p = test.spawn(string.format("%s -e %s", test.quote(test.sts_lua()), test.quote(string.format([[
      local sts = require "sts"
      local c = assert(sts.connect{ port = %d })
      for i = 1, 100 do assert(c:publish("sd/main", "m" .. i, { qos = 1 })) end
      sts.shutdown()
      print("must not get here")
    ]], broker.port))))
    spawned[#spawned + 1] = p
    assert.equal(0, p:wait(15), p:output())
    assert.matches("sts.shutdown: shutting down: 0 sessions, 0 listeners, 0 groups, 1 clients; 100 QoS 1/2 messages to flush",
      p:output())
    assert.not_matches("must not get here", p:output())
    assert.truthy(test.wait_until(function() return #got == 100 end), #got .. " of 100")
    watcher:close()
  end)

  it("has a group member leave its group on SIGTERM", function()
    local ks = identity(dir, "ks")
    local acl = dir .. "/shutdown.acl"
    test.write_file(acl, alice.hex .. " alice sdg rw\n")
    local kc = assert(sts.connect(broker:options()))
    local server = assert(sts.group.serve(kc, { identity = ks.key, acl = acl, prefix = "sdg" }))
    local left = {}
    server:on("event", function(ev, _, member, text)
      if ev == "left" then left[#left + 1] = member .. " " .. text end
    end)
    local path = dir .. "/member.lua"
    test.write_file(path, string.format([[
      local sts = require "sts"
      io.stdout:setvbuf("line")
      local c = assert(sts.connect{ port = %d })
      local g = assert(sts.group.join(c, { group = "sdg", identity = %q, keyserver = %q, prefix = "sdg" }))
      g:on("message", function() end)
      local f = assert(io.open("/proc/self/stat"))
      local pid = f:read("n")
      sts.after(0, function() print("joined " .. pid) end)
      sts.run()
    ]], broker.port, alice.key, ks.pub))
    local p = test.spawn_script(path)
    spawned[#spawned + 1] = p
    local pid = tonumber(p:wait_for("joined (%d+)\n", 15))
    assert.truthy(pid, p:output())
    assert.truthy(os.execute("kill -TERM " .. pid))
    assert.equal(0, p:wait(15), p:output())
    assert.matches("SIGTERM: shutting down: %d+ sessions, 0 listeners, 1 groups, 1 clients", p:output())
    assert.truthy(test.wait_until(function() return left[1] end), p:output())
    assert.same({ "alice left the group" }, left) -- its LEAVE, not its session ending
    assert.equal(0, server:stats().members)
    server:close()
    kc:close()
  end)

  it("has listeners read their trust files again on SIGHUP, and ends a process with none", function()
    local probe = assert(sts.connect(broker:options()))
    local l = assert(sts.listen(probe, { sub = "probe/+/up", pub = "probe/+/down", identity = bob.key,
      trust = dir .. "/bob.trust" }, function() end))
    local can_reload = l.reload_trust ~= nil
    l:close()
    probe:close()
    if not can_reload then pending("listener:reload_trust() is not in this build") return end
    local g = start()
    -- Alice is no longer trusted: her established session ends.
    test.write_file(dir .. "/bob.trust", identity(dir, "carol").hex .. " carol\n")
    assert.truthy(os.execute("kill -HUP " .. g.pid))
    assert.truthy(test.wait_until(function() return g.closed.reason end), g.p:output())
    assert.equal("trust revoked", g.closed.reason)
    assert.truthy(g.p:alive())
    -- A file that does not parse is refused, the old list kept, the process serving.
    test.write_file(dir .. "/bob.trust", "not a key\n")
    assert.truthy(os.execute("kill -HUP " .. g.pid))
    assert.truthy(g.p:wait_for("SIGHUP: a listener kept its trust list: .-bob%.trust"), g.p:output())
    assert.truthy(g.p:alive())
    test.write_file(dir .. "/bob.trust", alice.hex .. " alice\n")
    assert.truthy(os.execute("kill -TERM " .. g.pid))
    assert.equal(0, g.p:wait(15), g.p:output())
    finish(g)
    -- Without a listener, SIGHUP does what it always did.
    local path = dir .. "/no-listener.lua"
    test.write_file(path, string.format([[
      local sts = require "sts"
      io.stdout:setvbuf("line")
      local c = assert(sts.connect{ port = %d })
      local f = assert(io.open("/proc/self/stat"))
      local pid = f:read("n")
      sts.after(0, function() print("ready " .. pid) end)
      sts.run()
    ]], broker.port))
    local p = test.spawn_script(path)
    spawned[#spawned + 1] = p
    local pid = tonumber(p:wait_for("ready (%d+)\n"))
    assert.truthy(os.execute("kill -HUP " .. pid))
    assert.equal(128 + 1, p:wait(10), p:output())
  end)

  it("still dies of SIGTERM outside the loop, as before", function()
    local path = dir .. "/busy.lua"
    test.write_file(path, [[
      local sts = require "sts"
      io.stdout:setvbuf("line")
      local f = assert(io.open("/proc/self/stat"))
      print("ready " .. f:read("n"))
      os.execute("sleep 30")
      print("must not get here")
    ]])
    local p = test.spawn_script(path)
    spawned[#spawned + 1] = p
    local pid = tonumber(p:wait_for("ready (%d+)\n"))
    assert.truthy(os.execute("kill -TERM " .. pid))
    -- The wrapping shell reports a death by signal N as 128 + N.
    assert.equal(128 + 15, p:wait(10), p:output())
  end)
end)
