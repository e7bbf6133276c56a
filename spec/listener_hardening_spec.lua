-- sts.listen against a hostile broker (docs/PROTOCOL.md § Listener defences):
-- identities bound to topics, replayed INITREQs, closed and idle sessions
-- reaped, half-open state capped, refusals counted, cookies under load. The
-- gateway and the sensors run in this process on a real broker; an attacker
-- with the broker's powers is a raw client that records and publishes frames.
local sts = require "sts"
local test = require "sts.test"

local INITREQ = 1

local identity, trust_file = test.identity, test.trust_file

describe("listener hardening", function()
  local broker, dir, gateway_id, s7, s99, s8
  local clients = {}

  local function connect()
    local c = assert(sts.connect(broker:options()))
    clients[#clients + 1] = c
    return c
  end

  -- A sensor's handshake on `name`'s topics under prefix, with key id.
  local function sensor(prefix, name, id, extra)
    local o = { role = "initiator", pub = prefix .. "/" .. name .. "/up", sub = prefix .. "/" .. name .. "/down",
                identity = id.key, peer = gateway_id.pub, timeout = 1, retransmit = 0.2 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return sts.handshake(connect(), o)
  end

  -- Frames published on topics matching filter, as the broker sees them.
  local function recorder(filter)
    local rec = { frames = {} }
    assert(connect():subscribe(filter, function(topic, payload)
      rec.frames[#rec.frames + 1] = { topic = topic, payload = payload }
    end))
    function rec:of_type(t)
      local out = {}
      for _, f in ipairs(self.frames) do if f.payload:byte(2) == t then out[#out + 1] = f end end
      return out
    end
    return rec
  end

  local function listen(prefix, extra, on_session)
    local o = { sub = prefix .. "/+/up", pub = prefix .. "/+/down", identity = gateway_id.key,
                trust = dir .. "/gateway.trust", timeout = 1 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(sts.listen(connect(), o, on_session or function() end))
  end

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    gateway_id, s7, s99, s8 = identity(dir, "gateway"), identity(dir, "sensor-7"), identity(dir, "sensor-99"),
      identity(dir, "sensor-8")
    trust_file(dir .. "/gateway.trust", { { s7 }, { s99 }, { s8, "bound/sensor-8/#" } })
  end)
  after_each(function()
    for _, c in ipairs(clients) do c:disconnect() end
    clients = {}
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  it("refuses sensor-7's key on sensor-99's topic, and counts and names the refusal", function()
    local opened = {}
    local l = listen("plant", nil, function(s) opened[#opened + 1] = s.topic end)
    local s, err = sensor("plant", "sensor-99", s7)
    assert.is_nil(s)
    assert.matches("timeout", err)
    local st = l:stats()
    assert.is_true(st.rejected.name >= 1)
    assert.is_true(st.rejected_by_peer[s7.fingerprint] >= 1)
    assert.same({}, opened)
    -- Each on its own topic is fine.
    assert(sensor("plant", "sensor-7", s7))
    assert(sensor("plant", "sensor-99", s99))
    assert.truthy(test.wait_until(function() return #opened == 2 end))
    table.sort(opened)
    assert.same({ "plant/sensor-7/up", "plant/sensor-99/up" }, opened)
    assert.equal(2, l:stats().established)
    l:close()
  end)

  it("holds a key bound to topics to them, even on an unbound listener", function()
    local l = listen("bound", { bind = false })
    assert.is_nil((sensor("bound", "sensor-9", s8)))
    assert.is_true(l:stats().rejected.binding >= 1)
    assert(sensor("bound", "sensor-8", s8))
    -- Unbound: sensor-7 may take any topic of the listener (the warned-of choice).
    assert(sensor("bound", "anything", s7))
    l:close()
  end)

  it("refuses a trust file whose binding is no MQTT filter, naming file and key", function()
    local path = trust_file(dir .. "/bad.trust", { { s7, "plant/#/x" } })
    local l, err = sts.listen(connect(), { sub = "bad/+/up", pub = "bad/+/down", identity = gateway_id.key, trust = path },
      function() end)
    assert.is_nil(l)
    assert.matches("bad%.trust: the key named 'sensor%-7': topic binding 'plant/#/x' is not a valid MQTT filter", err)
    assert.has_error(function()
      sts.listen(connect(), { sub = "x/+/+/up", pub = "x/+/+/down", identity = gateway_id.key,
                              trust = dir .. "/gateway.trust" }, function() end)
    end, "option 'bind': binding by name needs a 'sub' filter with exactly one + level")
  end)

  it("never reports a replayed INITREQ established, and it never displaces the live session", function()
    local rec = recorder("replay/+/up")
    local opened, got = {}, {}
    local l = listen("replay", nil, function(s)
      opened[#opened + 1] = s
      s:on("message", function(m) got[#got + 1] = m end)
    end)
    local s = assert(sensor("replay", "sensor-7", s7))
    assert.truthy(test.wait_until(function() return #opened == 1 end))
    local initreq = assert(rec:of_type(INITREQ)[1]).payload
    local attacker = connect()
    for _ = 1, 3 do assert(attacker:publish("replay/sensor-7/up", initreq, { qos = 1 })) end
    assert(s:send("still here"))
    assert.truthy(test.wait_until(function() return #got == 1 end))
    assert.equal(1, #opened)
    assert.equal(opened[1], l:sessions()["replay/sensor-7/up"])
    assert.is_true(l:stats().rejected.replay >= 3)
    -- A gateway restarted (a new listener, no memory) takes the replay as a
    -- handshake, but never reports it: no live initiator confirms it.
    l:close()
    local fresh = {}
    local l2 = listen("replay", nil, function(x) fresh[#fresh + 1] = x end)
    assert(attacker:publish("replay/sensor-7/up", initreq, { qos = 1 }))
    assert.truthy(test.wait_until(function() return l2:stats().half_open == 1 end))
    assert.truthy(test.wait_until(function() return l2:stats().sessions == 0 end, 5))
    assert.same({}, fresh)
    assert.equal(1, l2:stats().handshake_jobs)
    l2:close()
  end)

  it("keeps every re-handshake of a sensor working while the broker replays its earlier INITREQs", function()
    local rec = recorder("rh/+/up")
    local got = {}
    local l = listen("rh", nil, function(x) x:on("message", function(m) got[#got + 1] = m end) end)
    local s = assert(sensor("rh", "sensor-7", s7))
    local attacker = connect()
    for round = 1, 5 do
      local before = s:stats().handshakes
      assert(s:rehandshake())
      local old = rec:of_type(INITREQ)
      for _, f in ipairs(old) do assert(attacker:publish(f.topic, f.payload, { qos = 1 })) end
      assert.truthy(test.wait_until(function() return s:stats().handshakes > before end))
      assert(s:send("round " .. round))
      assert.truthy(test.wait_until(function() return got[#got] == "round " .. round end), "round " .. round)
    end
    assert.equal(5, #got)
    assert.equal(1, l:stats().sessions)
    assert.is_true(l:stats().rejected.replay >= 10)
    l:close()
  end)

  it("reaps a session its peer closed, and a new handshake makes a new session", function()
    local opened = {}
    local l = listen("reap", nil, function(x) opened[#opened + 1] = x end)
    local s = assert(sensor("reap", "sensor-7", s7))
    assert.truthy(test.wait_until(function() return #opened == 1 end))
    s:close("bye")
    assert.truthy(test.wait_until(function() return l:stats().sessions == 0 end))
    assert.is_nil(l:sessions()["reap/sensor-7/up"])
    assert.equal("closed", opened[1]:state())
    assert(sensor("reap", "sensor-7", s7))
    assert.truthy(test.wait_until(function() return #opened == 2 end))
    assert.are_not.equal(opened[1], opened[2])
    assert.equal(opened[2], l:sessions()["reap/sensor-7/up"])
    l:close()
  end)

  it("closes an established session that stays silent for `idle` seconds, after its idle handler", function()
    local idled = {}
    local l = listen("idle", { idle = 0.5 }, function(x)
      x:on("idle", function(session) idled[#idled + 1] = session.topic end)
    end)
    local s = assert(sensor("idle", "sensor-7", s7))
    local why
    s:on("close", function(reason) why = reason end)
    assert.truthy(test.wait_until(function() return why ~= nil end, 5))
    assert.equal("idle", why)
    assert.same({ "idle/sensor-7/up" }, idled)
    assert.equal(0, l:stats().sessions)
    l:close()
  end)

  it("caps half-open state and expires it; garbage gets no RESYNC per frame; long topics are refused", function()
    local rec = recorder("cap/+/down")
    -- Unbound: bound by name, these topics would be refused before DH (below).
    local l = listen("cap", { max_half_open = 3, rate = { resyncs = 2 }, bind = false })
    local attacker = connect()
    -- XX INITREQs (an ephemeral key anyone can make) on ten topics.
    for n = 1, 10 do assert(attacker:publish("cap/t" .. n .. "/up", "\1\1\x21" .. sts.random(32), { qos = 1 })) end
    assert.truthy(test.wait_until(function() return l:stats().rejected.max_half_open == 7 end))
    local st = l:stats()
    assert.equal(3, st.half_open)
    -- Each holds a few kB (PROTOCOL.md §13.4), all of it C memory freed when it is dropped.
    assert.is_true(st.memory_half_open > 3 * 1000 and st.memory_half_open < 3 * 8192, st.memory_half_open)
    assert.truthy(test.wait_until(function() return l:stats().sessions == 0 end, 5))
    assert.equal(0, l:stats().memory)
    -- Garbage on topics with no session: counted, and at most the RESYNC budget answered.
    for n = 1, 40 do assert(attacker:publish("cap/g" .. n .. "/up", "\1\5" .. sts.random(30), { qos = 1 })) end
    assert(attacker:publish("cap/" .. string.rep("x", 300) .. "/up", "\1\1\x21" .. sts.random(32), { qos = 1 }))
    assert.truthy(test.wait_until(function()
      local st = l:stats()
      return st.rejected.no_session == 40 and st.rejected.topic_too_long == 1
    end))
    sts.sleep(0.3) -- RESYNCs beyond the budget would be on their way
    local resyncs = #rec:of_type(7)
    assert.is_true(resyncs >= 1 and resyncs <= 4, resyncs .. " RESYNCs")
    assert.equal(0, l:stats().sessions)
    l:close()
  end)

  it("refuses an oversized INITREQ before hashing, queueing or DH, and counts it", function()
    local l = listen("big")
    local attacker = connect()
    for n = 1, 5 do assert(attacker:publish("big/sensor-7/up", "\1\1\x21" .. sts.random(60000), { qos = 1 })) end
    assert.truthy(test.wait_until(function() return l:stats().rejected.too_big == 5 end))
    local st = l:stats()
    assert.equal(0, st.handshake_jobs)
    assert.equal(0, st.sessions)
    assert.is_nil(st.rejected.rate)
    l:close()
  end)

  it("bound by name, refuses before DH an INITREQ on a topic that names no trusted peer", function()
    local l = listen("named", { max_half_open = 3 })
    local attacker = connect()
    for n = 1, 10 do assert(attacker:publish("named/t" .. n .. "/up", "\1\1\x21" .. sts.random(32), { qos = 1 })) end
    assert.truthy(test.wait_until(function() return l:stats().rejected.name == 10 end))
    local st = l:stats()
    assert.equal(0, st.handshake_jobs)
    assert.equal(0, st.half_open)
    assert.is_nil(st.rejected.max_half_open)
    assert(sensor("named", "sensor-7", s7))
    assert.truthy(test.wait_until(function() return l:stats().established == 1 end))
    l:close()
  end)

  it("reloads its trust file: a revoked key's session closes, and it cannot handshake again", function()
    local path = trust_file(dir .. "/reload.trust", { { s7 }, { s99 } })
    local l = listen("reload", { trust = path })
    local s = assert(sensor("reload", "sensor-7", s7))
    local other = assert(sensor("reload", "sensor-99", s99))
    local why
    s:on("close", function(reason) why = reason end)
    trust_file(path, { { s99 } })
    assert.is_true(l:reload_trust())
    assert.truthy(test.wait_until(function() return why ~= nil end))
    assert.equal("trust revoked", why)
    assert.equal("established", other:state())
    assert.equal(1, l:stats().established)
    assert.is_nil((sensor("reload", "sensor-7", s7)))
    assert.is_true(l:stats().rejected.name >= 1) -- its topic now names no trusted peer: refused before DH
    -- A file that does not read leaves the list as it was.
    test.write_file(path, "not a key\n")
    local ok, err = l:reload_trust()
    assert.is_nil(ok)
    assert.matches("reload%.trust:1", err)
    assert(sensor("reload", "sensor-99", s99))
    l:close()
  end)

  it("binds a cookie to its INITREQ: it admits no other INITREQ on the topic", function()
    local rec = recorder("ck/+/down")
    local l = listen("ck", { rate = { handshakes = 0.2, burst = 2 } })
    local attacker = connect()
    local reqs = {}
    for n = 1, 3 do
      reqs[n] = "\1\1\x21" .. sts.random(32)
      assert(attacker:publish("ck/sensor-7/up", reqs[n], { qos = 1 }))
    end
    assert.truthy(test.wait_until(function() return #rec:of_type(9) == 1 end))
    local cookie = rec:of_type(9)[1].payload:sub(3)
    local st = l:stats()
    local cookies, rate = st.rejected.cookie, st.rejected.rate or 0
    assert(attacker:publish("ck/sensor-7/up", "\1\1\x21" .. sts.random(32) .. cookie, { qos = 1 }))
    assert.truthy(test.wait_until(function() return l:stats().rejected.cookie == cookies + 1 end))
    -- The INITREQ it was made for passes the check (and waits for a DH token).
    assert(attacker:publish("ck/sensor-7/up", reqs[3] .. cookie, { qos = 1 }))
    assert.truthy(test.wait_until(function() return (l:stats().rejected.rate or 0) == rate + 1 end))
    assert.equal(cookies + 1, l:stats().rejected.cookie)
    l:close()
  end)

  it("asks for a cookie under load; a sensor that returns it gets through, a blind flood does not", function()
    local rec = recorder("load/+/down")
    local opened = {}
    local l = listen("load", { rate = { handshakes = 2, burst = 4 }, bind = false },
      function(x) opened[#opened + 1] = x end)
    local attacker = connect()
    for n = 1, 50 do assert(attacker:publish("load/f" .. n .. "/up", "\1\1\x21" .. sts.random(32), { qos = 1 })) end
    assert.truthy(test.wait_until(function() return (l:stats().rejected.cookie or 0) >= 40 end))
    assert.is_true(l:stats().handshake_jobs <= 4)
    local s = assert(sensor("load", "sensor-7", s7, { timeout = 5 }))
    assert.truthy(test.wait_until(function() return #opened == 1 end))
    assert.equal("established", s:state())
    assert.is_true(l:stats().cookies_sent >= 41)
    assert.is_true(#rec:of_type(9) >= 41)
    l:close()
  end)
end)
