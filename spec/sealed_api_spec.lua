-- The Lua API of sealed one-way readings (docs/API.md, "Sealed readings"):
-- sts.sealer, sts.send_sealed and sts.listen_sealed in this process, through
-- a real mosquitto. The frames an attacker who owns the broker could send
-- (untrusted keys, replays, moved, cut and altered frames) are published
-- here by a plain client, and the listener's counters are read directly.
local sts = require "sts"
local test = require "sts.test"

-- The frame's layout (src/proto/sealed.h): version, type, pattern, suite,
-- [K: key id (8)], counter (8), then the Noise message.
local COUNTER_AT = { N = 5, K = 13, X = 5 }

-- frame with byte i xor mask.
local function flip(frame, i, mask)
  return frame:sub(1, i - 1) .. string.char(frame:byte(i) ~ mask) .. frame:sub(i + 1)
end

describe("sealed readings (API)", function()
  local broker, dir, sender
  local ids = {}

  -- dir/NAME.key and .pub; { key, pub, hex, fingerprint }.
  local function identity(name)
    local id = test.identity(dir, name)
    ids[name] = id
    return id
  end

  local state_count = 0
  -- A path for a state file not made yet.
  local function fresh_state(what)
    state_count = state_count + 1
    return string.format("%s/%s-%d.state", dir, what, state_count)
  end

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    for _, name in ipairs { "gw", "alice", "bob", "carol", "mallory" } do identity(name) end
    -- alice and bob by name; carol's line has no comment; mallory is not trusted.
    test.write_file(dir .. "/sensors.trust", table.concat({
      "# sensors of the gateway",
      ids.alice.hex .. " alice # kitchen, 2nd floor",
      ids.bob.hex .. "\tbob",
      ids.carol.hex,
    }, "\n") .. "\n")
    sender = assert(sts.connect(broker:options()))
  end)
  teardown(function()
    sender:disconnect()
    broker:stop()
    test.cleanup()
  end)

  local prefix_count = 0
  -- A listener on PREFIX/+/up of a client of its own (a new prefix each
  -- time, so tests do not hear each other). Its readings are collected in
  -- box.got as { reading, info }. Returns box, or nil and the message.
  local function listen(opts)
    prefix_count = prefix_count + 1
    local box = { prefix = opts.prefix or ("p" .. prefix_count), got = {} }
    box.client = assert(sts.connect(broker:options()))
    local o = { sub = box.prefix .. "/+/up", identity = ids.gw.key, trust = dir .. "/sensors.trust" }
    for k, v in pairs(opts) do if k ~= "prefix" then o[k] = v end end
    if opts.trust == false then o.trust = nil end
    local err
    box.listener, err = sts.listen_sealed(box.client, o, function(reading, info)
      box.got[#box.got + 1] = { reading = reading, info = info }
      if box.on_reading then box.on_reading(reading, info) end
    end)
    if not box.listener then
      box.client:disconnect()
      return nil, err
    end
    -- The broker takes one client's packets in order: once a probe
    -- subscribed after the listener hears itself, the listener's filter is
    -- in place too.
    local probe, heard = box.prefix .. "/probe", false
    assert(box.client:subscribe(probe, function() heard = true end, { qos = 1 }))
    assert(test.wait_until(function()
      box.client:publish(probe, "?", { qos = 1 })
      return heard
    end), "the listener's subscription is not in place")
    function box:topic(name) return self.prefix .. "/" .. name .. "/up" end
    function box:stats() return self.listener:stats() end
    function box:wait(n) return test.wait_until(function() return #self.got >= n end) end
    -- Waits until `reason` was counted n times.
    function box:wait_rejected(reason, n)
      return test.wait_until(function() return (self:stats().rejected[reason] or 0) >= n end)
    end
    function box:close()
      self.listener:close()
      self.client:disconnect()
    end
    return box
  end

  -- A sealer for a sensor on a state file of its own.
  local function sealer(name, extra)
    local o = { peer = ids.gw.pub, state = fresh_state(name or "anon"), create = true }
    if name then o.identity = ids[name].key end
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(sts.sealer(o))
  end

  local function publish(topic, frame)
    assert(sender:publish(topic, frame, { qos = 1 }))
  end

  -- Sends a good reading of alice and waits until it is delivered: every
  -- frame published before it has been handled by then.
  local function marker(box, s)
    local n = #box.got
    publish(box:topic("alice"), assert(s:seal("marker", box:topic("alice"))))
    assert.truthy(box:wait(n + 1))
    assert.are.equal("marker", box.got[#box.got].reading)
  end

  describe("the listener", function()
    it("delivers K, X and N readings with who sent them", function()
      local box = assert(listen { anonymous = true })
      local k, x, n = sealer("alice"), sealer("bob", { pattern = "X" }), sealer(nil, { pattern = "N" })
      publish(box:topic("alice"), assert(k:seal("21.5 C", box:topic("alice"))))
      publish(box:topic("bob"), assert(x:seal("bob's\0binary", box:topic("bob"))))
      publish(box:topic("anyone"), assert(n:seal("who knows", box:topic("anyone"))))
      assert.truthy(box:wait(3))
      local by = {}
      for _, r in ipairs(box.got) do by[r.info.pattern] = r end
      assert.are.same({ reading = "21.5 C", info = { sender = "alice", fingerprint = ids.alice.fingerprint,
        counter = k.counter, topic = box:topic("alice"), pattern = "K" } }, by.K)
      assert.are.same({ reading = "bob's\0binary", info = { sender = "bob", fingerprint = ids.bob.fingerprint,
        counter = x.counter, topic = box:topic("bob"), pattern = "X" } }, by.X)
      assert.are.same({ reading = "who knows", info = { counter = n.counter, topic = box:topic("anyone"),
        pattern = "N" } }, by.N)
      local st = box:stats()
      assert.are.equal(3, st.received)
      assert.are.equal(0, st.rejected_total)
      assert.are.equal(2, st.senders) -- alice and bob; N has no window
      box:close()
    end)

    it("gives a key without a name in the trust file no sender, but its fingerprint", function()
      local box = assert(listen {})
      assert(sts.send_sealed(sender, box:topic("carol"), "hi", { identity = ids.carol.key, peer = ids.gw.pub,
        state = fresh_state("carol"), create = true }))
      assert.truthy(box:wait(1))
      assert.is_nil(box.got[1].info.sender)
      assert.are.equal(ids.carol.fingerprint, box.got[1].info.fingerprint)
      box:close()
    end)

    it("refuses untrusted keys and, unless anonymous, pattern N", function()
      local box = assert(listen {})
      local topic = box:topic("mallory")
      publish(topic, assert(sealer("mallory"):seal("K from mallory", topic)))
      publish(topic, assert(sealer("mallory", { pattern = "X" }):seal("X from mallory", topic)))
      publish(topic, assert(sealer(nil, { pattern = "N" }):seal("N from anyone", topic)))
      marker(box, sealer("alice"))
      assert.are.equal(1, #box.got)
      local st = box:stats()
      assert.are.same({ untrusted = 2, anonymous = 1 }, st.rejected)
      assert.are.equal(3, st.rejected_total)
      box:close()
    end)

    it("delivers a frame once, however often it comes", function()
      local box = assert(listen {})
      local s = sealer("alice")
      local frame = assert(s:seal("once", box:topic("alice")))
      for _ = 1, 3 do publish(box:topic("alice"), frame) end
      assert.truthy(box:wait_rejected("replay", 2))
      marker(box, s)
      assert.are.equal(2, #box.got)
      assert.are.equal("once", box.got[1].reading)
      assert.are.same({ replay = 2 }, box:stats().rejected)
      box:close()
    end)

    it("keeps refusing a replay after a restart on the same state file", function()
      local state = fresh_state("replay")
      local s = sealer("alice")
      local box = assert(listen { state = state, create = true })
      local empty = assert(test.read_file(state))
      -- The window that accepted a reading is on disk before the reading is delivered.
      local on_delivery
      box.on_reading = function() on_delivery = test.read_file(state) end
      local topic = box:topic("alice")
      local frame = assert(s:seal("before the restart", topic))
      publish(topic, frame)
      assert.truthy(box:wait(1))
      assert.are_not.equal(empty, on_delivery)
      assert.are.equal("600", test.file_mode(state))
      box:close()
      assert.are.equal(on_delivery, test.read_file(state))

      local again = assert(listen { prefix = box.prefix, state = state })
      publish(topic, frame)
      assert.truthy(again:wait_rejected("replay", 1))
      marker(again, s)
      assert.are.equal(1, #again.got)
      again:close()
    end)

    it("refuses a missing replay state file unless create, and a corrupt one, leaving it as it is", function()
      local state = fresh_state("gw")
      local box, err = listen { state = state }
      assert.is_nil(box)
      assert.are.equal(state .. ": no such state file; create = true makes a new one", err)
      assert.is_nil(test.read_file(state))

      box = assert(listen { state = state, create = true })
      publish(box:topic("alice"), assert(sealer("alice"):seal("x", box:topic("alice"))))
      assert.truthy(box:wait(1))
      box:close()
      local good = assert(test.read_file(state))
      for _, bad in ipairs {
        { flip(good, #good - 40, 1), "corrupt replay state file: checksum mismatch" },
        { good:sub(1, #good - 1), "corrupt replay state file: checksum mismatch" },
        { good:sub(1, 20), "corrupt replay state file: truncated" },
        { good:sub(1, 7), "corrupt replay state file: truncated" },
        { "sts-key v1 x25519-public\n" .. ids.alice.hex .. "\n", "not a replay state file" },
      } do
        test.write_file(state, bad[1])
        box, err = listen { state = state, create = true }
        assert.is_nil(box)
        assert.truthy(err:find(state .. ": " .. bad[2], 1, true), err)
        assert.are.equal(bad[1], test.read_file(state))
      end
    end)

    it("counts a failed state write and delivers anyway", function()
      local statedir = test.tmpdir()
      local box = assert(listen { state = statedir .. "/gw.state", create = true })
      os.execute("rm -rf '" .. statedir .. "'")
      local s = sealer("alice")
      publish(box:topic("alice"), assert(s:seal("still here", box:topic("alice"))))
      assert.truthy(box:wait(1))
      assert.are.equal(1, box:stats().state_failures)
      box:close()
    end)

    it("refuses a frame moved to another topic", function()
      local box = assert(listen {})
      local s = sealer("alice")
      publish(box:topic("bob"), assert(s:seal("sealed for alice's topic", box:topic("alice"))))
      assert.truthy(box:wait_rejected("auth", 1))
      marker(box, s)
      assert.are.equal(1, #box.got)
      box:close()
    end)

    it("with bind = \"name\", accepts a sender only on the topic of its name", function()
      local box = assert(listen { bind = "name" })
      local alice, carol = sealer("alice"), sealer("carol")
      publish(box:topic("bob"), assert(alice:seal("alice as bob", box:topic("bob"))))
      publish(box:topic("carol"), assert(carol:seal("unnamed", box:topic("carol"))))
      assert.truthy(box:wait_rejected("unbound", 2))
      marker(box, alice)
      assert.are.equal(1, #box.got)
      assert.are.equal("alice", box.got[1].info.sender)
      box:close()
    end)

    it("refuses cut and altered frames, each by its reason", function()
      local box = assert(listen {})
      local s = sealer("alice")
      local topic = box:topic("alice")
      local frame = assert(s:seal("a reading", topic))
      publish(topic, frame:sub(1, 3))                        -- truncated
      publish(topic, flip(frame, 1, 0x02))                   -- bad_version
      publish(topic, flip(frame, 2, 0x01))                   -- unknown_type
      publish(topic, flip(frame, 4, 0x40))                   -- suite
      publish(topic, flip(frame, #frame, 0x01))              -- auth: the tag
      publish(topic, flip(frame, COUNTER_AT.K + 7, 0x01))    -- auth: the counter is in the prologue
      publish(topic, flip(frame, 5, 0x01))                   -- untrusted: the key id names nobody
      publish(topic, frame:sub(1, #frame - 1))               -- auth: one byte short
      assert.truthy(box:wait_rejected("auth", 3))
      marker(box, s)
      assert.are.equal(1, #box.got)
      assert.are.same({ truncated = 1, bad_version = 1, unknown_type = 1, suite = 1, auth = 3, untrusted = 1 },
        box:stats().rejected)
      -- The genuine frame still opens: nothing above moved the window.
      publish(topic, frame)
      assert.truthy(box:wait(2))
      assert.are.equal("a reading", box.got[2].reading)
      box:close()
    end)

    it("closes with its client, saving its state", function()
      local state = fresh_state("closing")
      local box = assert(listen { state = state, create = true })
      local before = test.read_file(state)
      box.client:disconnect()
      assert.has_no.errors(function() box.listener:close() end)
      assert.are.equal(before, test.read_file(state))
    end)

    it("checks its options", function()
      local c = assert(sts.connect(broker:options()))
      local base = { sub = "x/+/up", identity = ids.gw.key, trust = dir .. "/sensors.trust" }
      local function with(changes)
        local o = {}
        for k, v in pairs(base) do o[k] = v end
        for k, v in pairs(changes) do if v == false then o[k] = nil else o[k] = v end end
        return o
      end
      local handler = function() end
      for _, case in ipairs {
        { { colour = "red" }, "unknown option 'colour'" },
        { { trust = false }, "option 'trust' (a trust file) is required, unless anonymous = true" },
        { { identity = false }, "option 'identity'" },
        { { bind = "topic" }, "option 'bind' must be \"name\"" },
        { { bind = "name", sub = "x/up" }, "needs a 'trust' file of named keys and a 'sub' filter with a + level" },
        { { qos = 3 }, "option 'qos' must be 0, 1 or 2" },
      } do
        local ok, err = pcall(sts.listen_sealed, c, with(case[1]), handler)
        assert.is_false(ok)
        assert.truthy(err:find(case[2], 1, true), err)
      end
      local li, err = sts.listen_sealed(c, with { trust = dir .. "/absent.trust" }, handler)
      assert.is_nil(li)
      assert.truthy(err:find("absent.trust", 1, true), err)
      c:disconnect()
    end)
  end)

  describe("the sealer", function()
    it("hands out strictly increasing counters across sealers on one state file", function()
      local state = fresh_state("alice")
      local opts = { identity = ids.alice.key, peer = ids.gw.pub, state = state, create = true }
      local last = -1
      for _, n in ipairs { 3, 20, 1, 16 } do
        local s <close> = assert(sts.sealer(opts))
        for _ = 1, n do
          local frame = assert(s:seal("r", "t"))
          assert.is_true(s.counter > last)
          assert.are.equal(s.counter, (string.unpack(">I8", frame, COUNTER_AT.K)))
          last = s.counter
        end
      end
      -- The first counter of a new file is the time in ms << 16.
      local s <close> = assert(sts.sealer { identity = ids.alice.key, peer = ids.gw.pub,
        state = fresh_state("new"), create = true })
      assert(s:seal("r", "t"))
      assert.is_true(math.abs((s.counter >> 16) - sts.time() * 1000) < 60000)
      assert.are.equal("600", test.file_mode(opts.state))
    end)

    it("never hands out a counter twice, even to two sealers open on one file", function()
      local opts = { identity = ids.alice.key, peer = ids.gw.pub, state = fresh_state("two"), create = true }
      local a, b = assert(sts.sealer(opts)), assert(sts.sealer(opts))
      local seen = {}
      for _ = 1, 40 do
        for _, s in ipairs { a, b } do
          assert(s:seal("r", "t"))
          assert.is_nil(seen[s.counter])
          seen[s.counter] = true
        end
      end
      a:close()
      b:close()
    end)

    it("skips at most 15 counters after a crash, and never reuses one", function()
      local state = fresh_state("crash")
      local opts = { identity = ids.alice.key, peer = ids.gw.pub, state = state, create = true }
      local s = assert(sts.sealer(opts))
      local used = {}
      for i = 1, 3 do
        assert(s:seal("r", "t"))
        used[i] = s.counter
      end
      local on_disk = test.read_file(state)
      s = nil -- dropped without close: like a process that dies
      collectgarbage()
      assert.are.equal(on_disk, test.read_file(state)) -- nothing is written on the way out
      local after = assert(sts.sealer(opts))
      assert(after:seal("r", "t"))
      assert.are.equal(used[1] + 16, after.counter)
      after:close()
    end)

    it("refuses a missing state file unless create, and a corrupt one, leaving it as it is", function()
      local state = fresh_state("none")
      local s, err = sts.sealer { identity = ids.alice.key, peer = ids.gw.pub, state = state }
      assert.is_nil(s)
      assert.are.equal(state .. ": no such state file; create = true makes a new one", err)
      assert.is_nil(test.read_file(state))
      local ok
      ok, err = sts.send_sealed(sender, "t", "r", { identity = ids.alice.key, peer = ids.gw.pub, state = state })
      assert.is_nil(ok)
      assert.truthy(err:find("no such state file", 1, true))

      assert(sts.sealer { identity = ids.alice.key, peer = ids.gw.pub, state = state, create = true }):close()
      local good = assert(test.read_file(state))
      assert.are.equal(48, #good)
      for _, bad in ipairs {
        { flip(good, 12, 0x80), "corrupt sealer state file: checksum mismatch" },
        { good:sub(1, 47), "corrupt sealer state file: checksum mismatch" },
        { good:sub(1, 10), "corrupt sealer state file: truncated" },
        { good .. "\n", "not a sealer state file" },
        { test.read_file(ids.alice.pub), "not a sealer state file" },
      } do
        test.write_file(state, bad[1])
        s, err = sts.sealer { identity = ids.alice.key, peer = ids.gw.pub, state = state, create = true }
        assert.is_nil(s)
        assert.truthy(err:find(state .. ": " .. bad[2], 1, true), err)
        assert.are.equal(bad[1], test.read_file(state))
      end
      -- A sealer whose file goes bad under it stops at its next block.
      test.write_file(state, good)
      s = assert(sts.sealer { identity = ids.alice.key, peer = ids.gw.pub, state = state })
      assert(s:seal("r", "t"))
      test.write_file(state, "garbage")
      for _ = 2, 16 do assert(s:seal("r", "t")) end
      local frame
      frame, err = s:seal("r", "t")
      assert.is_nil(frame)
      assert.truthy(err:find("not a sealer state file", 1, true), err)
      assert.are.equal("garbage", test.read_file(state))
    end)

    it("checks its options and wipes its key on close", function()
      local base = { identity = ids.alice.key, peer = ids.gw.pub, state = fresh_state("opts"), create = true }
      local function with(changes)
        local o = {}
        for k, v in pairs(base) do o[k] = v end
        for k, v in pairs(changes) do if v == false then o[k] = nil else o[k] = v end end
        return o
      end
      for _, case in ipairs {
        { { qos = 1 }, "unknown option 'qos'" },
        { { state = false }, "option 'state'" },
        { { peer = false }, "option 'peer'" },
        { { identity = false }, "option 'identity'" },
        { { pattern = "N" }, "pattern N is anonymous: it takes no 'identity'" },
        { { pattern = "IK" }, "option 'pattern' must be \"K\", \"X\" or \"N\"" },
        { { suite = "25519_AESGCM_SHA384" }, "option 'suite' must be one of" },
        { { peer = sts.load_key(ids.alice.key) }, "a private key where a public key belongs" },
      } do
        local ok, err = pcall(sts.sealer, with(case[1]))
        assert.is_false(ok)
        assert.truthy(err:find(case[2], 1, true), err)
      end
      local s = assert(sts.sealer(with { suite = "25519_AESGCM_SHA512", pattern = "X" }))
      assert.is_nil(s.counter)
      assert.has_error(function() s:seal("r", "a/+") end)
      assert.is_true(select(2, s:seal(string.rep("x", 65001), "t")):find("at most 65000 bytes", 1, true) ~= nil)
      s:close()
      s:close()
      assert.has_error(function() s:seal("r", "t") end, "attempt to use a closed sealer")
    end)

    it("send_sealed seals and publishes one reading", function()
      local box = assert(listen {})
      local opts = { identity = ids.bob.key, peer = ids.gw.pub, pattern = "X", suite = "25519_ChaChaPoly_SHA512",
        state = fresh_state("bob"), create = true, qos = 0 }
      assert.is_true(sts.send_sealed(sender, box:topic("bob"), "one", opts))
      opts.create = nil
      assert.is_true(sts.send_sealed(sender, box:topic("bob"), "two", opts))
      assert.truthy(box:wait(2))
      assert.are.same({ "one", "two" }, { box.got[1].reading, box.got[2].reading })
      assert.are.equal(box.got[1].info.counter + 16, box.got[2].info.counter) -- one block per call
      box:close()
    end)
  end)
end)
