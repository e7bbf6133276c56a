-- Native secure sessions (docs/PROTOCOL.md) through real mosquitto brokers,
-- between real sts-lua processes: patterns, trust, what the broker sees, an
-- attacker who owns the broker, restarts, QoS 1 across a broker restart, the
-- listener, rekeying, key files and the keygen script.
--
-- The peer processes run spec/peers/session_peer.lua. Where the spec itself
-- holds one end of a session, it is the victim of the attacks, so that its
-- rejection counters can be read directly.
local sts = require "sts"
local test = require "sts.test"

local PEER = "spec/peers/session_peer.lua"

-- Frame types (PROTOCOL.md §2).
local INITREQ, INITACK, AUTHREQ, ENC, KILL = 1, 2, 3, 5, 6
local OVERHEAD = 26 -- version, type, counter, tag (§2.1)

-- s as a Lua pattern that matches it literally.
local function lit(s)
  return (s:gsub("%p", "%%%0"))
end

-- --- identities ------------------------------------------------------------------

local identity = test.identity

-- A trust file accepting the given identities, with comments around.
local function trust_file(path, ids)
  local lines = { "# peers accepted by this node", "" }
  for _, id in ipairs(ids) do lines[#lines + 1] = id.hex .. " " .. id.name end
  test.write_file(path, table.concat(lines, "\n") .. "\n")
  return path
end

-- --- peer processes --------------------------------------------------------------

-- The handshake time limit where a test does not test it: ample for
-- processes under emulation, and only a bound (a handshake that completes
-- ends the wait).
local HANDSHAKE_TIMEOUT = 10

-- Spawns spec/peers/session_peer.lua against broker with options o (a table
-- of its long options: { role = "initiator", send = 3, print = true }; the
-- timeout is HANDSHAKE_TIMEOUT unless o says). Every peer still running is
-- killed after each test, passed or failed.
local spawned = {}
local function spawn_peer(broker, o)
  local args = { "-p", tostring(broker.port) }
  if o.timeout == nil then args[3], args[4] = "--timeout", tostring(HANDSHAKE_TIMEOUT) end
  for k, v in pairs(o) do
    args[#args + 1] = "--" .. k:gsub("_", "-")
    if v ~= true then args[#args + 1] = tostring(v) end
  end
  local p = test.spawn_script(PEER, table.unpack(args))
  spawned[#spawned + 1] = p
  return p
end

after_each(function()
  for _, p in ipairs(spawned) do p:kill() end
  spawned = {}
end)

-- Returns once a peer process's session reads topic: client publishes empty
-- frames there until the peer logs rejecting one.
local function until_reading(client, p, topic)
  assert(test.wait_until(function()
    assert(client:publish(topic, ""))
    return p:output():find("rejected input: truncated", 1, true)
  end, 10, 0.1), "the peer never read " .. topic .. ":\n" .. p:output())
end

-- The lines "message X" a peer printed, as a list of X.
local function printed_messages(p)
  local got = {}
  for m in p:output():gmatch("message ([^\n]*)") do got[#got + 1] = m end
  return got
end

-- Returns once the broker has taken every subscription client asked for so
-- far: it handles a connection's packets in order, so a QoS 1 message
-- published after them is acknowledged after they took effect.
local function subscriptions_taken(client)
  assert(client:publish("session-spec/fence", "", { qos = 1 }))
  assert(client:flush(10), "the broker did not acknowledge the fence")
end

-- --- sessions in this process -------------------------------------------------------

-- Collects what a session delivers; :wait(n) runs the loop until n arrived.
local function collect(session)
  local box = { messages = {} }
  session:on("message", function(m) box.messages[#box.messages + 1] = m end)
  function box:wait(n, timeout)
    return test.wait_until(function() return #self.messages >= n end, timeout or 5)
  end
  -- Waits for a message matching pattern; returns its capture.
  function box:wait_for(pattern, timeout)
    return test.wait_until(function()
      for _, m in ipairs(self.messages) do
        local c = m:match(pattern)
        if c then return c end
      end
    end, timeout or 5)
  end
  function box:clear() self.messages = {} end
  return box
end

-- The peer process's session:stats(), asked through the session itself.
local function remote_stats(session, box)
  box:clear()
  assert(session:send("stats"))
  local line = assert(box:wait_for("^stats (.*)"), "the peer did not answer 'stats'")
  local stats = { rejected = {} }
  for k, v in line:gmatch("(%S+)=(%d+)") do
    local reason = k:match("^rejected%.(.+)")
    if reason then stats.rejected[reason] = tonumber(v) else stats[k] = tonumber(v) end
  end
  return stats
end

-- Sends a message through the session and waits for the peer's echo.
local function round_trip(session, box, text)
  box:clear()
  assert(session:send(text))
  return box:wait_for("^echo:(" .. lit(text) .. ")$", 5) == text
end

-- rejected counts of a stats table, minus those of an earlier one.
local function rejected_since(before, after)
  local d = {}
  for reason, n in pairs(after.rejected) do
    local delta = n - (before.rejected[reason] or 0)
    if delta > 0 then d[reason] = delta end
  end
  return d
end

-- --- the wire --------------------------------------------------------------------

-- Records every message on the broker: { topic, payload } in arrival order.
local function sniff(broker)
  local c = assert(sts.connect(broker:options()))
  local wire = { client = c, frames = {} }
  assert(c:subscribe("#", function(topic, payload)
    wire.frames[#wire.frames + 1] = { topic = topic, payload = payload }
  end, { qos = 1 }))
  -- The frames on topic, optionally only those of one type.
  function wire:on(topic, type)
    local list = {}
    for _, f in ipairs(self.frames) do
      if f.topic == topic and (not type or f.payload:byte(2) == type) then list[#list + 1] = f.payload end
    end
    return list
  end
  -- The frames on topic once each, in order, and how many copies beyond
  -- the first the wire carried: a handshake message retransmitted (the
  -- session's timer is short beside a slow peer) gets the same reply again,
  -- and an ENC that is such a reply (the confirmation) goes out twice.
  -- copies = { sealed = ENC and KILL copies, handshake = the others' }.
  function wire:distinct(topic, type)
    local list, seen, copies = {}, {}, { sealed = 0, handshake = 0 }
    for _, p in ipairs(self:on(topic, type)) do
      if not seen[p] then
        seen[p] = true
        list[#list + 1] = p
      elseif p:byte(2) == ENC or p:byte(2) == KILL then
        copies.sealed = copies.sealed + 1
      else
        copies.handshake = copies.handshake + 1
      end
    end
    return list, copies
  end
  -- Whether the receiver on topic rejected nothing but copies the wire
  -- carried there (waiting until the sniffer has seen as many as it could
  -- have): a second copy of an ENC or KILL is a replay, one of a handshake
  -- message the session is past is out of state (else it is answered
  -- again). rejected: reason -> count; total, if given: of all reasons.
  function wire:only_copies_rejected(topic, rejected, total)
    return test.wait_until(function()
      local _, copies = self:distinct(topic)
      for reason, n in pairs(rejected) do
        local allowed = reason == "replay" and copies.sealed or reason == "state" and copies.handshake or 0
        if n > allowed then return false end
      end
      return (total or 0) <= copies.sealed + copies.handshake
    end, 5)
  end
  function wire:close() self.client:disconnect() end
  subscriptions_taken(c)
  return wire
end

-- The u64 counter of a sealed frame (bytes 3-10, big-endian).
local function counter_of(frame)
  return (string.unpack(">I8", frame, 3))
end

-- frame with byte i xor mask.
local function flip(frame, i, mask)
  return frame:sub(1, i - 1) .. string.char(frame:byte(i) ~ mask) .. frame:sub(i + 1)
end

local function random_text(prefix)
  return prefix .. "-" .. sts.hex(sts.random(8))
end

-- --- a session between the spec and a peer process ------------------------------------

-- A relay between two brokers: the peer process talks to `far`, the spec's
-- session to `near`, and every frame of the session passes through here. It
-- can hold, drop, reorder, alter and inject frames: what a broker that
-- attacks can do. "up" is the peer's direction (far -> near), "down" the
-- spec's (near -> far).
local function relay(near, far, up, down)
  local r = {
    near = assert(sts.connect(near:options())), far = assert(sts.connect(far:options())),
    seen = { up = {}, down = {} }, held = { up = {}, down = {} }, holding = {},
  }
  local route = { up = { client = r.near, topic = up }, down = { client = r.far, topic = down } }
  -- Publishes a frame where the direction's receiver reads it.
  function r:inject(dir, frame)
    assert(route[dir].client:publish(route[dir].topic, frame, { qos = 1 }))
  end
  local function pass(dir, frame)
    table.insert(r.seen[dir], frame)
    if r.holding[dir] then table.insert(r.held[dir], frame) else r:inject(dir, frame) end
  end
  assert(r.far:subscribe(up, function(_, frame) pass("up", frame) end, { qos = 1 }))
  assert(r.near:subscribe(down, function(_, frame) pass("down", frame) end, { qos = 1 }))
  -- Keeps the direction's frames until release.
  function r:hold(dir) self.holding[dir] = true end
  function r:wait_held(dir, n) return test.wait_until(function() return #self.held[dir] >= n end, 5) end
  -- Forwards the held frames in the given order (indexes; default: as
  -- they came); those left out are dropped.
  function r:release(dir, order)
    local held = self.held[dir]
    self.held[dir], self.holding[dir] = {}, nil
    if not order then
      order = {}
      for i = 1, #held do order[i] = i end
    end
    for _, i in ipairs(order) do self:inject(dir, held[i]) end
  end
  -- The frames seen in a direction, of one type.
  function r:frames(dir, type)
    local list = {}
    for _, f in ipairs(self.seen[dir]) do if f:byte(2) == type then list[#list + 1] = f end end
    return list
  end
  function r:close()
    self.near:disconnect()
    self.far:disconnect()
  end
  subscriptions_taken(r.near)
  subscriptions_taken(r.far)
  return r
end

-- The spec as the responder (the victim, on broker `near`), a peer process
-- as the initiator (on `far`, through a relay when it is another broker).
-- o: topic, responder (identity and trust options), initiator (peer options),
-- client (connect options of the spec's client).
local function session_with_peer(near, far, o)
  local up, down = o.topic .. "/up", o.topic .. "/down"
  local w = { up = up, down = down }
  if far ~= near then w.relay = relay(near, far, up, down) end
  w.client = assert(sts.connect(near:options(o.client)))
  local opts = { role = "responder", pub = down, sub = up, timeout = 1, retransmit = 0.2 }
  for k, v in pairs(o.responder) do opts[k] = v end
  local done = sts.future()
  sts.task(function() done:set(sts.handshake(w.client, opts)) end)
  subscriptions_taken(w.client) -- the responder's, before the initiator sends
  local p_opts = { role = "initiator", pub = up, sub = down }
  for k, v in pairs(o.initiator) do p_opts[k] = v end
  w.peer = spawn_peer(far, p_opts)
  local err
  w.session, err = done:wait(10)
  assert(w.session, "handshake: " .. tostring(err) .. "\n" .. w.peer:output())
  w.box = collect(w.session)
  -- Starts another peer process with the same options (and more).
  function w:respawn(more)
    for k, v in pairs(more or {}) do p_opts[k] = v end
    self.peer = spawn_peer(far, p_opts)
    return self.peer
  end
  function w:close()
    self.peer:kill()
    self.session:close()
    self.client:disconnect()
    if self.relay then self.relay:close() end
  end
  return w
end

describe("native sessions between two sts-lua processes", function()
  local broker, dir, alice, bob, wire

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    alice, bob = identity(dir, "alice"), identity(dir, "bob")
    trust_file(dir .. "/alice.trust", { bob })
    trust_file(dir .. "/bob.trust", { alice })
    wire = sniff(broker)
  end)
  teardown(function()
    wire:close()
    broker:stop()
    test.cleanup()
  end)

  -- What a peer process logged rejecting: reason -> how many lines, and the
  -- count the last line gave (the log has the 1st, 2nd, 4th, 8th... only).
  local function logged_rejections(p)
    local rejected, total = {}, 0
    for reason, n in p:output():gmatch("rejected input: (%S+) %((%d+) rejected so far%)") do
      rejected[reason] = (rejected[reason] or 0) + 1
      total = math.max(total, tonumber(n))
    end
    return rejected, total
  end

  -- Bob answers on t/down, Alice initiates on t/up with the given trust
  -- options; Alice sends three secrets, Bob echoes them. The empty
  -- confirmation (§4.5) goes the way `confirmation` says.
  local function exchange(topic, initiator_opts, confirmation)
    local secret = random_text("plaintext")
    local up, down = topic .. "/up", topic .. "/down"
    local r = spawn_peer(broker, {
      role = "responder", pub = down, sub = up, identity = bob.key, trust = dir .. "/bob.trust", print = true,
    })
    local i_opts = { role = "initiator", pub = up, sub = down, identity = alice.key, print = true, send = 3, text = secret }
    for k, v in pairs(initiator_opts) do i_opts[k] = v end
    local i = spawn_peer(broker, i_opts)
    local ok = i:wait_for("message echo:" .. lit(secret) .. " 3")
    -- the sniffer is not behind
    test.wait_until(function() return #wire:distinct(down, ENC) >= 3 + (confirmation == "down" and 1 or 0) end, 5)
    i:kill()
    r:kill()
    return { i = i, r = r, up = up, down = down, secret = secret, ok = ok, confirmation = confirmation }
  end

  -- The session carried the secrets both ways, once each, and the wire
  -- never did.
  local function check_exchange(x)
    assert.truthy(x.ok, "initiator: " .. x.i:output() .. "\nresponder: " .. x.r:output())
    assert.equal(bob.fingerprint, x.i:output():match("established (%S+) true"))
    assert.equal(alice.fingerprint, x.r:output():match("established (%S+) true"))
    local expect_r, expect_i = {}, {}
    for n = 1, 3 do
      expect_r[n] = x.secret .. " " .. n
      expect_i[n] = "echo:" .. x.secret .. " " .. n
    end
    assert.same(expect_r, printed_messages(x.r))
    assert.same(expect_i, printed_messages(x.i))
    for _, side in ipairs({ { x.i, x.down }, { x.r, x.up } }) do
      assert.truthy(wire:only_copies_rejected(side[2], logged_rejections(side[1])), side[1]:output())
    end
    local seen = 0
    for _, f in ipairs(wire.frames) do
      if f.topic == x.up or f.topic == x.down then
        seen = seen + 1
        assert.is_nil(f.payload:find(x.secret, 1, true), "plaintext on the wire: " .. f.topic)
        assert.is_nil(f.payload:find(x.secret:match("%-(.*)"), 1, true), "plaintext on the wire")
      end
    end
    assert.is_true(seen >= 9, "the sniffer saw " .. seen .. " frames")
    -- Every ENC is its plaintext and 26 bytes (§2.1): "S n" up, "echo:S n" down.
    local function plaintext_lengths(topic)
      local list = {}
      for _, p in ipairs((wire:distinct(topic, ENC))) do list[#list + 1] = #p - OVERHEAD end
      table.sort(list)
      return list
    end
    local len = #x.secret + 2
    local up, down = { len, len, len }, { len + 5, len + 5, len + 5 }
    table.insert(x.confirmation == "up" and up or down, 1, 0)
    assert.same(up, plaintext_lengths(x.up))
    assert.same(down, plaintext_lengths(x.down))
  end

  it("XX: mutual authentication against trust files, messages both ways, nothing readable on the wire", function()
    local x = exchange("xx", { trust = dir .. "/alice.trust" }, "down")
    check_exchange(x)
    -- Noise XX through STS frames: 35 + 98 + 66 bytes (PROTOCOL.md §4.2).
    assert.same({ 35, 66 }, { #wire:on(x.up, INITREQ)[1], #wire:on(x.up, AUTHREQ)[1] })
    assert.equal(98, #wire:on(x.down, INITACK)[1])
    assert.equal(0x21, wire:on(x.up, INITREQ)[1]:byte(3)) -- XX, 25519_ChaChaPoly_SHA256
  end)

  it("IK: the initiator pins the responder's key; one round trip", function()
    local x = exchange("ik", { peer = bob.pub }, "up")
    check_exchange(x)
    assert.equal(107, #wire:on(x.up, INITREQ)[1]) -- with its 8-byte timestamp (PROTOCOL.md §4.3)
    assert.equal(50, #wire:on(x.down, INITACK)[1])
    assert.equal(0, #wire:on(x.up, AUTHREQ))
    assert.equal(0x31, wire:on(x.up, INITREQ)[1]:byte(3))
  end)

  it("NN only when both sides ask for it, and reported unauthenticated", function()
    local secret = random_text("nn")
    local r = spawn_peer(broker, { role = "responder", pub = "nn/down", sub = "nn/up", pattern = "NN", print = true })
    local i = spawn_peer(broker, { role = "initiator", pub = "nn/up", sub = "nn/down", pattern = "NN", print = true, send = 1, text = secret })
    assert.truthy(i:wait_for("message echo:" .. lit(secret) .. " 1"), i:output() .. r:output())
    assert.truthy(i:output():match("established none false"))
    assert.truthy(r:output():match("established none false"))
    assert.matches("NOT authenticated", i:output())
    assert.matches("NOT authenticated", r:output())
    for _, p in ipairs(wire:on("nn/up")) do assert.is_nil(p:find(secret, 1, true)) end
    i:kill()
    r:kill()

    -- A responder that was not asked for NN refuses it (suite): no session.
    r = spawn_peer(broker, { role = "responder", pub = "nn2/down", sub = "nn2/up", identity = bob.key, trust = dir .. "/bob.trust" })
    until_reading(wire.client, r, "nn2/up")
    i = spawn_peer(broker, { role = "initiator", pub = "nn2/up", sub = "nn2/down", pattern = "NN", timeout = 1 })
    assert.truthy(i:wait_for("failed: [^\n]+"), i:output())
    assert.matches("failed: [^\n]*timeout", i:output())
    assert.is_nil(r:output():match("established"))
    assert.matches("rejected input: suite", r:output())
    r:kill()
  end)

  it("refuses an untrusted identity, with the reason, and accepts it once trusted", function()
    local mallory = identity(dir, "mallory")
    -- Alice does not trust Mallory as a responder: her handshake fails, saying why.
    local m = spawn_peer(broker, { role = "responder", pub = "u/down", sub = "u/up", identity = mallory.key, trust = dir .. "/bob.trust" })
    local c = assert(sts.connect(broker:options()))
    until_reading(c, m, "u/up")
    local s, err = sts.handshake(c, {
      role = "initiator", pub = "u/up", sub = "u/down", identity = alice.key, trust = dir .. "/alice.trust",
      timeout = 1, retransmit = 0.2,
    })
    assert.is_nil(s)
    assert.matches("untrusted", err)
    m:kill()

    -- Bob's trust file does not list Mallory as an initiator: Bob refuses her
    -- (she hears nothing back, so her handshake times out), and says why.
    -- He listens from her first INITREQ on: she sends it again for 3 s.
    local i = spawn_peer(broker, { role = "initiator", pub = "u2/up", sub = "u2/down", identity = mallory.key, peer = bob.pub, timeout = 3 })
    assert.truthy(test.wait_until(function() return wire:on("u2/up", INITREQ)[1] end, 10), i:output())
    s, err = sts.handshake(c, {
      role = "responder", pub = "u2/down", sub = "u2/up", identity = bob.key, trust = dir .. "/bob.trust", wait = 1.5,
    })
    assert.is_nil(s)
    assert.equal("timeout: no handshake completed; refused: untrusted", err)
    assert.truthy(i:wait_for("failed: [^\n]+"), i:output())
    assert.matches("failed: timeout", i:output())
    i:kill()

    -- Once Bob's trust file lists her, Mallory gets a session.
    trust_file(dir .. "/bob2.trust", { alice, mallory })
    local r = spawn_peer(broker, { role = "responder", pub = "u3/down", sub = "u3/up", identity = bob.key, trust = dir .. "/bob2.trust" })
    i = spawn_peer(broker, { role = "initiator", pub = "u3/up", sub = "u3/down", identity = mallory.key, peer = bob.pub, send = 1, print = true })
    assert.truthy(i:wait_for("message echo:seq 1"), i:output() .. r:output())
    assert.equal(mallory.fingerprint, r:output():match("established (%S+) true"))
    i:kill()
    r:kill()
    c:disconnect()
  end)
end)

describe("a session under attack by the broker", function()
  local near, far, dir, alice, bob, mallory
  local count = 0

  setup(function()
    near, far = test.broker(), test.broker()
    dir = test.tmpdir()
    alice, bob, mallory = identity(dir, "alice"), identity(dir, "bob"), identity(dir, "mallory")
    trust_file(dir .. "/alice.trust", { bob })
    trust_file(dir .. "/bob.trust", { alice })
  end)
  teardown(function()
    near:stop()
    far:stop()
    test.cleanup()
  end)

  -- Bob (the spec, on near) answers Alice (a process, on far) through a relay.
  local function world()
    count = count + 1
    local w = session_with_peer(near, far, {
      topic = "attack" .. count,
      responder = { identity = bob.key, trust = dir .. "/bob.trust" },
      initiator = { identity = alice.key, trust = dir .. "/alice.trust", timeout = 2 },
    })
    assert.is_true(round_trip(w.session, w.box, "warm-up"))
    return w
  end

  it("delivers reordered frames once each, a late one once, and rejects every replay", function()
    local w = world()
    local r = w.relay
    r:hold("up")
    for i = 1, 8 do assert(w.session:send("m" .. i)) end
    assert.truthy(r:wait_held("up", 8))
    local before = w.session:stats()
    w.box:clear()
    r:release("up", { 8, 3, 5, 1, 7, 2, 6 }) -- reordered; the echo of m4 is dropped
    assert.truthy(w.box:wait(7))
    sts.sleep(0.1)
    local got = w.box.messages
    table.sort(got)
    assert.same({ "echo:m1", "echo:m2", "echo:m3", "echo:m5", "echo:m6", "echo:m7", "echo:m8" }, got)
    assert.same({}, rejected_since(before, w.session:stats()))

    -- Every ENC the peer ever sent, again: only the one never delivered
    -- (the echo of m4, late but inside the window) gets through, once.
    local encs = r:frames("up", ENC)
    w.box:clear()
    for _, f in ipairs(encs) do r:inject("up", f) end
    assert.truthy(test.wait_until(function()
      return (w.session:stats().rejected.replay or 0) >= #encs - 1
    end))
    sts.sleep(0.1)
    assert.same({ "echo:m4" }, w.box.messages)
    assert.same({ replay = #encs - 1 }, rejected_since(before, w.session:stats()))
    -- And all of them once more, in reverse: all replays now.
    for i = #encs, 1, -1 do r:inject("up", encs[i]) end
    assert.truthy(test.wait_until(function()
      return rejected_since(before, w.session:stats()).replay == 2 * #encs - 1
    end))
    assert.same({ "echo:m4" }, w.box.messages)
    assert.is_true(round_trip(w.session, w.box, "after replays"))
    w:close()
  end)

  it("takes frames up to 1023 behind the newest, and no older (the 1024-frame window)", function()
    local w = world()
    local r = w.relay
    r:hold("up")
    for i = 1, 1100 do assert(w.session:send("w" .. i)) end
    assert.truthy(r:wait_held("up", 1100))
    local held = r.held.up
    local top = counter_of(held[#held])
    local inside, edge, oldest -- counters top - 1023, top - 1024, and the first
    local order = {}
    for i, f in ipairs(held) do
      local behind = top - counter_of(f)
      if behind == 1023 then inside = f elseif behind == 1024 then edge = f
      elseif i == 1 then oldest = f else order[#order + 1] = i end
    end
    assert.truthy(inside and edge and oldest)
    local before = w.session:stats()
    w.box:clear()
    r:release("up", order)
    assert.truthy(w.box:wait(#order, 10))
    r:inject("up", inside)
    r:inject("up", edge)
    r:inject("up", oldest)
    assert.truthy(test.wait_until(function() return w.session:stats().rejected_total > before.rejected_total + 1 end))
    sts.sleep(0.1)
    assert.equal(#order + 1, #w.box.messages)
    assert.same({ replay = 2 }, rejected_since(before, w.session:stats()))
    w:close()
  end)

  it("rejects truncated, bit-flipped and forged frames by reason, and the genuine frame still gets through", function()
    local w = world()
    local r = w.relay
    r:hold("up")
    assert(w.session:send("target"))
    assert.truthy(r:wait_held("up", 1))
    local f = r.held.up[1]
    local n = counter_of(f)
    assert.is_true(n < 256, "counter " .. n)
    local own = r:frames("down", ENC) -- what the spec itself sent, to reflect back
    local attacks = {
      { "", "truncated" },
      { f:sub(1, 1), "truncated" },
      { f:sub(1, 25), "truncated" },        -- shorter than counter and tag
      { f:sub(1, #f - 1), "auth" },         -- a tag byte cut
      { f .. "\0", "auth" },                -- a byte added
      { flip(f, 1, 0x02), "bad_version" },
      { flip(f, 2, 0x01), "unknown_type" }, -- ENC -> the reserved AUTHACK
      { flip(f, 2, 0x03), "auth" },         -- ENC -> KILL: the type is authenticated
      { flip(f, 9, 0x01), "auth" },         -- counter + 256
      { flip(f, 6, 0x01), "auth" },         -- the next epoch: derived, then refused
      { flip(f, 3, 0x80), "stale_epoch" },  -- an epoch far ahead
      { flip(f, 11, 0x01), "auth" },        -- ciphertext
      { flip(f, #f, 0x80), "auth" },        -- tag
      { "\1\5" .. string.pack(">I8", n + 1) .. sts.random(40), "auth" },   -- forged ENC
      { "\1\6" .. string.pack(">I8", n + 2) .. sts.random(20), "auth" },   -- forged KILL
      { "\1\5" .. string.pack(">I8", -1) .. sts.random(20), "stale_epoch" }, -- counter 2^64-1: the last epoch
      { own[#own], "auth" },                -- a frame of the other direction, moved to this topic
      { "\1\7", "state" },                  -- RESYNC to a responder
      { "\1\7x", "malformed" },
      { "\1\2" .. sts.random(48), "state" }, -- INITACK to a responder
      { "\1\x0a" .. sts.random(30), "unknown_type" }, -- 0x09 is COOKIE
      { "\1\1\x21" .. sts.random(200), "too_big" }, -- a handshake frame over 128 bytes
      { "\1\1\x99" .. sts.random(32), "suite" },
      { "\1\5" .. sts.random(70000), "too_big" },
    }
    local expected = {}
    for _, a in ipairs(attacks) do expected[a[2]] = (expected[a[2]] or 0) + 1 end
    local before = w.session:stats()
    w.box:clear()
    for _, a in ipairs(attacks) do r:inject("up", a[1]) end
    assert.truthy(test.wait_until(function()
      return w.session:stats().rejected_total - before.rejected_total >= #attacks
    end))
    sts.sleep(0.1)
    assert.same(expected, rejected_since(before, w.session:stats()))
    assert.same({}, w.box.messages)
    assert.equal("established", w.session:state())
    -- None of that moved the replay window or the epoch: the genuine frame arrives.
    r:release("up")
    assert.truthy(w.box:wait(1))
    assert.same({ "echo:target" }, w.box.messages)
    -- The peer took nothing wrong either.
    assert.same({}, remote_stats(w.session, w.box).rejected)
    w:close()
  end)

  it("ignores a KILL from anyone but the peer, even a genuine KILL of an earlier session", function()
    local w = world()
    local r = w.relay
    local closed
    w.session:on("close", function(reason) closed = reason end)
    local established = 0
    w.session:on("established", function() established = established + 1 end)
    -- Alice ends the session: her KILL is authentic.
    assert(w.session:send("close"))
    assert.truthy(test.wait_until(function() return closed end))
    assert.equal("asked to close", closed)
    assert.truthy(w.peer:wait(5))
    local old_kill = r:frames("up", KILL)
    assert.equal(1, #old_kill)
    old_kill = old_kill[1]
    closed = nil
    -- Alice comes back; the responder takes her without being restarted.
    w:respawn()
    assert.truthy(test.wait_until(function() return established == 1 end))
    assert.is_true(round_trip(w.session, w.box, "second session"))
    local before = w.session:stats()
    local genuine = r:frames("up", ENC)
    genuine = genuine[#genuine]
    r:inject("up", old_kill)                                  -- replayed from the first session
    r:inject("up", flip(genuine, 2, 0x03))                    -- a delivered ENC turned into a KILL: its counter is used
    r:inject("up", "\1\6" .. string.pack(">I8", counter_of(genuine) + 1) .. sts.random(30)) -- forged
    r:inject("up", "\1\6" .. string.pack(">I8", 7 << 32) .. sts.random(30)) -- an epoch too far
    assert.truthy(test.wait_until(function()
      return w.session:stats().rejected_total - before.rejected_total >= 4
    end))
    sts.sleep(0.1)
    assert.same({ auth = 2, replay = 1, stale_epoch = 1 }, rejected_since(before, w.session:stats()))
    assert.is_nil(closed)
    assert.equal("established", w.session:state())
    assert.is_true(round_trip(w.session, w.box, "still open"))
    w:close()
  end)

  it("survives old handshake messages resent to both sides", function()
    local w = world()
    local r = w.relay
    local before = w.session:stats()
    local p_before = remote_stats(w.session, w.box)
    r:inject("up", r:frames("up", INITREQ)[1])
    r:inject("up", r:frames("up", AUTHREQ)[1])
    r:inject("down", r:frames("down", INITACK)[1])
    -- The INITREQ opens an attempt nobody can finish (its ephemeral key is
    -- gone), which reads the old AUTHREQ as a forgery and times out.
    assert.truthy(test.wait_until(function() return w.session:stats().rejected.timeout end, 3))
    local d = rejected_since(before, w.session:stats())
    assert.same({ auth = 1, timeout = 1 }, d)
    assert.equal(before.handshakes, w.session:stats().handshakes)
    -- Alice takes no INITACK outside a handshake: the old one, and those of
    -- the dead attempt.
    local p_after = remote_stats(w.session, w.box)
    assert.is_true(rejected_since(p_before, p_after).state >= 2)
    assert.equal(p_before.handshakes, p_after.handshakes)
    assert.is_true(round_trip(w.session, w.box, "after old handshakes"))
    w:close()
  end)

  it("refuses a handshake completed with a key of the attacker's own, from either side", function()
    local w = world()
    local before = w.session:stats()
    -- Mallory initiates to Bob with her key, IK (she knows Bob's public key) ...
    local mc = assert(sts.connect(near:options()))
    local s, err = sts.handshake(mc, {
      role = "initiator", pub = w.up, sub = w.down, identity = mallory.key, peer = bob.pub, timeout = 1, retransmit = 0.3,
    })
    assert.is_nil(s)
    assert.matches("timeout", err)
    assert.is_true(rejected_since(before, w.session:stats()).untrusted >= 1)
    -- ... and XX: her AUTHREQ carries her key, which Bob refuses. An XX
    -- initiator uses its keys at once (§4.5), so she gets a session, but
    -- what she sends with it is refused, and it fails unconfirmed.
    local xx_closed
    s, err = sts.handshake(mc, {
      role = "initiator", pub = w.up, sub = w.down, identity = mallory.key, trust = dir .. "/alice.trust",
      pattern = "XX", timeout = 1, retransmit = 0.3,
    })
    assert(s, err)
    s:on("close", function(reason) xx_closed = reason end)
    assert(s:send("let me in"))
    assert(s:send("let me in, please"))
    assert.truthy(test.wait_until(function() return xx_closed end, 3))
    assert.equal("timeout", xx_closed)
    local d = rejected_since(before, w.session:stats())
    assert.is_true(d.untrusted >= 2, "untrusted " .. tostring(d.untrusted))
    -- Her first counter, 0, is one Alice used (the warm-up): the window
    -- refuses it before the tag is even checked (§5.2); her second does not
    -- authenticate.
    assert.equal(1, d.replay)
    assert.equal(1, d.auth)
    assert.equal(before.handshakes, w.session:stats().handshakes)
    assert.equal(alice.fingerprint, w.session.peer)
    assert.is_true(round_trip(w.session, w.box, "bob and alice"))

    -- Mallory answers Alice's next handshake as a responder, ahead of Bob
    -- (the relay holds his answer back until Alice has read hers): Alice
    -- refuses her key and completes with Bob. (Mallory leaves before Alice
    -- sends under the new keys: her RESYNCs would start yet another
    -- handshake, as §9 allows, and blur the count.)
    local p_before = remote_stats(w.session, w.box)
    local r = w.relay
    r:hold("down")
    assert(w.session:send("rehandshake"))
    assert.truthy(r:wait_held("down", 1))
    local mf = assert(sts.connect(far:options()))
    local fake = sts.future()
    sts.task(function()
      fake:set(sts.handshake(mf, {
        role = "responder", pub = w.down, sub = w.up, identity = mallory.key, trust = dir .. "/bob.trust", wait = 2, timeout = 1,
      }))
    end)
    subscriptions_taken(mf) -- Mallory's, before Alice's INITREQ reaches her
    r:release("down")
    r:hold("down") -- Bob's INITACK
    assert.truthy(w.peer:wait_for("rejected input: untrusted", 5), w.peer:output())
    mf:disconnect()
    r:release("down")
    assert.truthy(test.wait_until(function() return w.session:stats().handshakes == before.handshakes + 1 end))
    assert.is_true(round_trip(w.session, w.box, "after the race"))
    local p_after = remote_stats(w.session, w.box)
    assert.is_true(rejected_since(p_before, p_after).untrusted >= 1)
    assert.equal(p_before.handshakes + 1, p_after.handshakes)
    assert.equal(alice.fingerprint, w.session.peer)
    assert.is_nil(fake:wait(3))
    mc:disconnect()
    w:close()
  end)

  it("accepts a restarted peer without a restart, and the old session's INITREQ does not break the new one", function()
    local w = world()
    local r = w.relay
    local peers = {}
    w.session:on("established", function(fingerprint) peers[#peers + 1] = fingerprint end)
    local old_initreq = r:frames("up", INITREQ)[1]
    w.peer:kill("KILL") -- no KILL frame: the process is just gone
    w:respawn()
    assert.truthy(test.wait_until(function() return #peers == 1 end))
    assert.same({ alice.fingerprint }, peers)
    assert.is_true(round_trip(w.session, w.box, "after restart"))
    assert.equal(2, w.session:stats().handshakes)
    -- The dead process's INITREQ, replayed: an attempt that cannot complete.
    local before = w.session:stats()
    r:inject("up", old_initreq)
    r:inject("up", old_initreq) -- a duplicate is answered from the attempt's cache
    assert.truthy(test.wait_until(function() return w.session:stats().rejected.timeout end, 3))
    assert.is_true(round_trip(w.session, w.box, "after the old INITREQ"))
    local after = w.session:stats()
    assert.equal(2, after.handshakes)
    assert.same({ timeout = 1 }, rejected_since(before, after))
    assert.is_true(after.retransmits > before.retransmits)
    assert.same({ alice.fingerprint }, peers)
    w:close()
  end)
end)

describe("sessions at work", function()
  local broker, dir, alice, bob

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    alice, bob = identity(dir, "alice"), identity(dir, "bob")
    trust_file(dir .. "/alice.trust", { bob })
    trust_file(dir .. "/bob.trust", { alice })
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  local function pair(topic, responder, initiator)
    local r = { identity = bob.key, trust = dir .. "/bob.trust" }
    for k, v in pairs(responder or {}) do r[k] = v end
    local i = { identity = alice.key, peer = bob.pub }
    for k, v in pairs(initiator or {}) do i[k] = v end
    return session_with_peer(broker, broker, { topic = topic, responder = r, initiator = i })
  end

  it("ends a waiting handshake when its client closes, and gives up when told to wait no longer", function()
    local c = assert(sts.connect(broker:options()))
    sts.after(0.2, function() c:disconnect() end)
    local started = sts.now()
    local s, err = sts.handshake(c, { role = "responder", pub = "closing/down", sub = "closing/up",
      identity = bob.key, trust = dir .. "/bob.trust" })
    assert.is_nil(s)
    assert.equal("client closed", err)
    assert.is_true(sts.now() - started < 2)
    local c2 = assert(sts.connect(broker:options()))
    s, err = sts.handshake(c2, { role = "responder", pub = "lonely/down", sub = "lonely/up",
      identity = bob.key, trust = dir .. "/bob.trust", wait = 0.2 })
    assert.is_nil(s)
    assert.equal("timeout: no initiator came", err)
    c2:disconnect()
  end)

  it("exits cleanly when a script ends with sessions and a listener still open", function()
    local script = test.tmpdir() .. "/leave-open.lua"
    test.write_file(script, string.format([[
      local sts = require "sts"
      local gateway = assert(sts.connect{ port = %d })
      sts.listen(gateway, { sub = "open/+/up", pub = "open/+/down", identity = %q, trust = %q }, function() end)
      local sensor = assert(sts.connect{ port = %d })
      assert(sts.handshake(sensor, { role = "initiator", pub = "open/alice/up", sub = "open/alice/down",
        identity = %q, peer = %q }))
      print("established")
    ]], broker.port, bob.key, dir .. "/bob.trust", broker.port, alice.key, bob.pub))
    local p = test.spawn_script(script)
    assert.truthy(p:wait(10))
    assert.equal(0, p:exit_code())
    assert.matches("established", p:output())
    assert.is_nil(p:output():find("error", 1, true))
  end)

  -- A listener on PREFIX/+/up whose sessions nobody handles yet, and Alice's
  -- session to it: gateway, sensor, the listener, its sessions (a list
  -- filled as they come) and Alice's session.
  local function unhandled_session(prefix)
    local gateway = assert(sts.connect(broker:options()))
    local sessions = {}
    local listener = assert(sts.listen(gateway, { sub = prefix .. "/+/up", pub = prefix .. "/+/down",
      identity = bob.key, trust = dir .. "/bob.trust" }, function(session) sessions[#sessions + 1] = session end))
    local sensor = assert(sts.connect(broker:options()))
    local s = assert(sts.handshake(sensor, { role = "initiator", pub = prefix .. "/alice/up", sub = prefix .. "/alice/down",
      identity = alice.key, peer = bob.pub }))
    return gateway, sensor, listener, sessions, s
  end

  it("keeps messages that arrive before a message handler is set, and hands them to it", function()
    local gateway, sensor, listener, sessions, s = unhandled_session("early")
    for i = 1, 3 do assert(s:send("early " .. i)) end
    assert.truthy(test.wait_until(function() return sessions[1] and sessions[1]:stats().received == 3 end))
    local got = {}
    sessions[1]:on("message", function(text) got[#got + 1] = text end)
    assert.same({}, got) -- not inside on(): from the loop
    assert.truthy(test.wait_until(function() return #got == 3 end, 2))
    assert.same({ "early 1", "early 2", "early 3" }, got)
    listener:close()
    sensor:disconnect()
    gateway:disconnect()
  end)

  it("hands kept messages to a new handler before one that arrives in the same turn", function()
    local gateway, sensor, listener, sessions, s = unhandled_session("order")
    for i = 1, 2 do assert(s:send("kept " .. i)) end
    assert.truthy(test.wait_until(function() return sessions[1] and sessions[1]:stats().received == 2 end))
    -- A second subscriber, whose copy of the next frame says the broker has
    -- sent it to the gateway too: mosquitto_sub ends on its second message,
    -- the first being a probe that shows it subscribed.
    local sub = test.spawn(string.format("mosquitto_sub -h 127.0.0.1 -p %d -t order/probe -t order/alice/up -C 2 -v", broker.port))
    assert(test.wait_until(function()
      assert(sensor:publish("order/probe", "probe"))
      return sub:output():find("order/probe", 1, true)
    end, 10, 0.1), "mosquitto_sub did not subscribe")
    -- Sent now (libmosquitto writes it at once), and in the gateway's socket
    -- before its loop next runs, when the handler set here first gets the two
    -- kept messages.
    assert(s:send("new 3"))
    local got = {}
    sessions[1]:on("message", function(text) got[#got + 1] = text end)
    local deadline = os.time() + 10
    while sub:alive() and os.time() <= deadline do os.execute("sleep 0.01") end -- not running this loop
    assert.is_false(sub:alive(), "mosquitto_sub did not see the frame")
    assert.truthy(test.wait_until(function() return #got == 3 end))
    assert.same({ "kept 1", "kept 2", "new 3" }, got)
    listener:close()
    sensor:disconnect()
    gateway:disconnect()
  end)

  it("rekeys by message count while messages keep flowing", function()
    local wire = sniff(broker)
    local w = pair("rekey", { rekey = { messages = 5 } }, { rekey = 5 })
    local sent = {}
    for i = 1, 40 do
      sent[i] = "echo:r" .. i
      assert(w.session:send("r" .. i))
    end
    assert.truthy(w.box:wait(40))
    table.sort(sent)
    table.sort(w.box.messages)
    assert.same(sent, w.box.messages)
    -- On the wire (PROTOCOL.md §7): each epoch carries 5 frames, with counters
    -- e * 2^32 + 0 ... 4. Down: the 40 messages; up: Alice's confirmation
    -- (IK) and the 40 echoes.
    local function counters(topic)
      local list = {}
      for _, f in ipairs((wire:distinct(topic, ENC))) do list[#list + 1] = counter_of(f) end
      table.sort(list)
      return list
    end
    local function expected(n)
      local list = {}
      for k = 0, n - 1 do list[#list + 1] = (k // 5 << 32) + k % 5 end
      return list
    end
    test.wait_until(function() -- the sniffer is not behind
      return #wire:distinct(w.down, ENC) >= 40 and #wire:distinct(w.up, ENC) >= 41
    end, 10)
    assert.same(expected(40), counters(w.down))
    assert.same(expected(41), counters(w.up))
    -- Bob left 7 sending epochs and followed Alice into 8. Neither side
    -- rejected anything but copies the wire carried to it.
    local st = w.session:stats()
    assert.is_true(st.rekeys >= 15, "rekeys " .. st.rekeys)
    assert.truthy(wire:only_copies_rejected(w.up, st.rejected, st.rejected_total))
    local p = remote_stats(w.session, w.box)
    assert.is_true(p.rekeys >= 15, "peer rekeys " .. p.rekeys)
    assert.truthy(wire:only_copies_rejected(w.down, p.rejected, p.rejected_total))
    assert.is_true(round_trip(w.session, w.box, "after rekeys"))
    w:close()
    wire:close()
  end)

  it("survives a Lua error in a message handler, in the peer and here", function()
    local w = pair("boom")
    assert(w.session:send("boom"))
    assert.truthy(w.peer:wait_for("boom on purpose"))
    assert.is_true(round_trip(w.session, w.box, "still alive"))
    assert.is_true(w.peer:alive())
    local errors = sts.stats().handler_errors
    local got = {}
    w.session:on("message", function(m)
      if m == "echo:fail" then error("handler failed on purpose") end
      got[#got + 1] = m
    end)
    assert(w.session:send("fail"))
    assert(w.session:send("ok"))
    assert.truthy(test.wait_until(function() return #got == 1 end))
    assert.same({ "echo:ok" }, got)
    assert.equal(errors + 1, sts.stats().handler_errors)
    w:close()
  end)

  it("serves several initiators at once through one listener", function()
    local sensors = {}
    for n = 1, 4 do sensors[n] = identity(dir, "s" .. n) end -- named as their topics
    trust_file(dir .. "/gateway.trust", sensors)
    local c = assert(sts.connect(broker:options()))
    local opened = {}
    local listener = assert(sts.listen(c, {
      sub = "plant/+/up", pub = "plant/+/down", identity = bob.key, trust = dir .. "/gateway.trust",
      timeout = HANDSHAKE_TIMEOUT,
    }, function(session)
      opened[#opened + 1] = session.topic
      session:on("message", function(m) session:send("echo:" .. m) end)
    end))
    local peers = {}
    for n = 1, 4 do
      -- Two pin the gateway's (Bob's) key (IK), two check it against a trust file (XX).
      peers[n] = spawn_peer(broker, {
        role = "initiator", pub = "plant/s" .. n .. "/up", sub = "plant/s" .. n .. "/down", identity = sensors[n].key,
        peer = n <= 2 and bob.pub or nil, trust = n > 2 and dir .. "/alice.trust" or nil,
        send = 20, print = true, text = "s" .. n,
      })
    end
    -- An initiator the gateway does not trust gets nothing.
    local intruder = spawn_peer(broker, {
      role = "initiator", pub = "plant/x/up", sub = "plant/x/down", identity = alice.key, peer = bob.pub, timeout = 1,
    })
    for n = 1, 4 do
      assert.truthy(peers[n]:wait_for("message echo:s" .. n .. " 20", 30), peers[n]:output())
      local want = {}
      for k = 1, 20 do want[k] = "echo:s" .. n .. " " .. k end
      local got = printed_messages(peers[n])
      table.sort(want)
      table.sort(got)
      assert.same(want, got)
    end
    assert.truthy(intruder:wait_for("failed"), intruder:output())
    local sessions = listener:sessions()
    local topics = {}
    for topic, s in pairs(sessions) do
      topics[#topics + 1] = topic
      local n = tonumber(topic:match("^plant/s(%d)/up$"))
      assert.equal(sensors[n].fingerprint, s.peer)
      assert.equal("plant/s" .. n .. "/down", s.pub)
      assert.equal(20, s:stats().received)
      assert.is_true(s.authenticated)
    end
    table.sort(topics)
    assert.same({ "plant/s1/up", "plant/s2/up", "plant/s3/up", "plant/s4/up" }, topics)
    table.sort(opened)
    assert.same(topics, opened)

    -- The gateway ends one sensor's session; the sensor comes back later and
    -- gets a new one on the same topics.
    sessions["plant/s1/up"]:close("evicted")
    assert.truthy(peers[1]:wait_for("closed evicted"), peers[1]:output())
    assert.is_nil(listener:sessions()["plant/s1/up"])
    local first = peers[1]:output()
    peers[1] = spawn_peer(broker, {
      role = "initiator", pub = "plant/s1/up", sub = "plant/s1/down", identity = sensors[1].key, peer = bob.pub,
      send = 3, print = true, text = "again",
    })
    assert.truthy(peers[1]:wait_for("message echo:again 3"), peers[1]:output() .. first)
    local again = listener:sessions()["plant/s1/up"]
    assert.equal(sensors[1].fingerprint, again.peer)
    assert.equal(3, again:stats().received)
    table.sort(opened)
    assert.same({ "plant/s1/up", "plant/s1/up", "plant/s2/up", "plant/s3/up", "plant/s4/up" }, opened)
    listener:close()
    for n = 1, 4 do assert.truthy(peers[n]:wait_for("closed listener closed"), peers[n]:output()) end
    intruder:kill()
    c:disconnect()
  end)

  it("delivers 10,000 QoS 1 messages exactly once across a broker restart", function()
    local b = test.broker()
    finally(function() b:stop() end)
    local w = session_with_peer(b, b, {
      topic = "qos1",
      client = { client_id = "spec-receiver", clean_session = false, reconnect = { min_delay = 0.1, max_delay = 0.5 } },
      responder = { identity = bob.key, trust = dir .. "/bob.trust", qos = 1 },
      -- A pause of 5 ms every 10 messages: sending takes 5 s at least, however
      -- fast the sender runs beside this receiver, so the restart below
      -- comes while it sends.
      initiator = { identity = alice.key, peer = bob.pub, qos = 1, send = 10000, batch = 10,
                    client_id = "peer-sender", persistent = true },
    })
    local seen, n, duplicates = {}, 0, 0
    w.session:on("message", function(m)
      local i = assert(tonumber(m:match("^seq (%d+)$")), m)
      if seen[i] then duplicates = duplicates + 1 end
      seen[i] = true
      n = n + 1
    end)
    assert.truthy(test.wait_until(function() return n >= 1000 end, 20))
    assert.is_nil(w.peer:output():match("sent"), "the sender finished before the restart")
    local at_restart = n
    b:restart()
    assert.truthy(test.wait_until(function() return n >= 10000 end, 40), n .. " delivered\n" .. w.peer:output())
    assert.truthy(w.peer:wait_for("sent 10000", 10))
    sts.sleep(0.5) -- a duplicate would come now
    assert.equal(0, duplicates)
    assert.equal(10000, n)
    for i = 1, 10000 do
      if not seen[i] then error("message " .. i .. " never delivered") end
    end
    assert.is_true(at_restart < 10000)
    assert.equal(0, (w.session:stats().rejected.auth or 0))
    w:close()
  end)
end)

describe("identity files", function()
  local broker, dir

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  local mode = test.file_mode

  it("refuses a private key file that group or others can read, as ssh does", function()
    local id = identity(dir, "loose")
    local peer = identity(dir, "other")
    os.execute("chmod 644 " .. test.quote(id.key))
    local c = assert(sts.connect(broker:options()))
    local opts = { role = "initiator", pub = "k/up", sub = "k/down", identity = id.key, peer = peer.pub, timeout = 1 }
    local s, err = sts.handshake(c, opts)
    assert.is_nil(s)
    assert.matches("identity: .*loose%.key: private key is accessible by others %(mode 644%); chmod 600 it", err)
    local l, lerr = sts.listen(c, { sub = "k/+/up", pub = "k/+/down", identity = id.key, peer = peer.pub }, function() end)
    assert.is_nil(l)
    assert.matches("mode 644", lerr)
    os.execute("chmod 640 " .. test.quote(id.key))
    s, err = sts.handshake(c, opts)
    assert.is_nil(s)
    assert.matches("mode 640", err)
    -- The same text given inline is a key, not a file: no mode to check.
    s, err = sts.handshake(c, { role = "responder", pub = "k/down", sub = "k/up", identity = test.read_file(id.key),
                                peer = peer.pub, wait = 0.1 })
    assert.is_nil(s)
    assert.equal("timeout: no initiator came", err)
    -- 0600 is fine (the handshake then times out: nobody answers).
    os.execute("chmod 600 " .. test.quote(id.key))
    s, err = sts.handshake(c, opts)
    assert.is_nil(s)
    assert.matches("timeout", err)
    c:disconnect()
  end)

  it("refuses keys that are not keys, naming the option", function()
    local id = identity(dir, "good")
    local c = assert(sts.connect(broker:options()))
    local base = { role = "initiator", pub = "k/up", sub = "k/down", identity = id.key, peer = id.pub, timeout = 1 }
    local NONE = {}
    local function try(changes)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(changes) do o[k] = v ~= NONE and v or nil end
      return sts.handshake(c, o)
    end
    local s, err = try{ identity = dir .. "/missing.key" }
    assert.is_nil(s)
    assert.matches("identity: .*missing%.key: No such file", err)
    test.write_file(dir .. "/public-as-private.key", test.read_file(id.pub), "600") -- a public key where the private one belongs
    s, err = try{ identity = dir .. "/public-as-private.key" }
    assert.is_nil(s)
    assert.matches("identity: .*not an sts private key file", err)
    assert.has_error(function() try{ peer = test.read_file(id.key) } end, "peer: a private key where a public key belongs")
    s, err = try{ peer = "sts-key v1 x25519-public\nabc\n" }
    assert.is_nil(s)
    assert.matches("peer: not a valid key text", err)
    test.write_file(dir .. "/bad.trust", "# one good line, one bad\n" .. id.hex .. " me\nnot a key\n")
    s, err = try{ peer = NONE, trust = dir .. "/bad.trust" }
    assert.is_nil(s)
    assert.matches("bad%.trust:3: not a public key", err)
    s, err = try{ peer = NONE, trust = dir .. "/missing.trust" }
    assert.is_nil(s)
    assert.matches("trust: cannot open .*missing%.trust", err)
    assert.has_error(function() try{ peer = NONE } end,
      "an authenticated session needs option 'peer' (a pinned public key) or 'trust' (a file of accepted keys)")
    c:disconnect()
  end)

  it("scripts/keygen.lua writes NAME.key (0600) and NAME.pub and prints the fingerprint", function()
    local name = dir .. "/gateway"
    local p = test.spawn_script("scripts/keygen.lua", name)
    assert.equal(0, p:wait())
    local private, public = test.read_file(name .. ".key"), test.read_file(name .. ".pub")
    assert.equal("600", mode(name .. ".key"))
    assert.matches("^sts%-key v1 x25519%-private\n%x+\n$", private)
    assert.matches("^sts%-key v1 x25519%-public\n%x+\n$", public)
    assert.equal(64, #public:match("\n(%x+)"))
    assert.equal(public, sts.public_key(name .. ".key"))
    -- The fingerprint, as ssh computes one: unpadded base64 of SHA-256 over
    -- the raw key, computed here by openssl.
    local raw = public:match("\n(%x+)"):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    test.write_file(dir .. "/raw", raw)
    local q = io.popen("openssl dgst -sha256 -binary " .. test.quote(dir .. "/raw") .. " | base64")
    local expected = "SHA256:" .. q:read("l"):gsub("=+$", "")
    q:close()
    assert.equal(expected, sts.fingerprint(public))
    assert.equal(name .. ".key, " .. name .. ".pub: " .. expected .. "\n", p:output())

    -- It does not overwrite keys unless told to.
    p = test.spawn_script("scripts/keygen.lua", name)
    assert.equal(1, p:wait())
    assert.matches("exists; %-%-force replaces them", p:output())
    assert.equal(private, test.read_file(name .. ".key"))
    p = test.spawn_script("scripts/keygen.lua", name, "--force")
    assert.equal(0, p:wait())
    assert.not_equal(private, test.read_file(name .. ".key"))
    assert.equal("600", mode(name .. ".key"))
    -- Its keys work: a session between two identities made by it.
    local q2 = test.spawn_script("scripts/keygen.lua", dir .. "/sensor")
    assert.equal(0, q2:wait())
    trust_file(dir .. "/gw.trust", { { hex = test.read_file(dir .. "/sensor.pub"):match("\n(%x+)"), name = "sensor" } })
    local w = session_with_peer(broker, broker, {
      topic = "keygen",
      responder = { identity = name .. ".key", trust = dir .. "/gw.trust" },
      initiator = { identity = dir .. "/sensor.key", peer = name .. ".pub" },
    })
    assert.equal(sts.fingerprint(dir .. "/sensor.pub"), w.session.peer)
    assert.is_true(round_trip(w.session, w.box, "made by keygen"))
    w:close()
  end)
end)
