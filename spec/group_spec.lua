-- Native groups through a real broker: a key server and members, in this
-- process and as separate sts-lua processes (scripts/keyserver.lua,
-- scripts/group_chat.lua).
local sts = require "sts"
local test = require "sts.test"

describe("groups", function()
  local broker, dir
  local ids = {}

  local function identity(name)
    local id = test.identity(dir, name)
    ids[name] = id
    return id
  end

  -- An ACL file: lines of { name, groups[, perm] }.
  local function write_acl(path, lines)
    local out = { "# written by group_spec" }
    for _, l in ipairs(lines) do
      out[#out + 1] = string.format("%s %s %s %s", ids[l[1]].hex, l[1], l[2], l[3] or "rw")
    end
    test.write_file(path, table.concat(out, "\n") .. "\n")
    return path
  end

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    for _, name in ipairs { "ks", "alice", "bob", "carol", "dave", "mallory" } do identity(name) end
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  local prefix_count = 0
  -- A key server in this process, on a prefix of its own so tests do not
  -- see each other's groups.
  local function serve(opts)
    prefix_count = prefix_count + 1
    local prefix = "g" .. prefix_count
    local client = assert(sts.connect(broker:options()))
    local o = { identity = ids.ks.key, acl = dir .. "/acl-" .. prefix, prefix = prefix }
    write_acl(o.acl, opts.acl)
    opts.acl = nil
    for k, v in pairs(opts) do o[k] = v end
    local server = assert(sts.group.serve(client, o))
    return server, prefix, client
  end

  local function join(name, group, prefix, extra)
    local client = assert(sts.connect(broker:options()))
    local opts = { group = group, identity = ids[name].key, keyserver = ids.ks.pub, prefix = prefix }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local g, err = sts.group.join(client, opts)
    return g, err, client
  end

  -- Collects what a member receives, as "sender: text".
  local function inbox(g)
    local got = {}
    g:on("message", function(text, info) got[#got + 1] = info.sender .. ": " .. text end)
    return got
  end

  local function has(list, item)
    for _, v in ipairs(list) do if v == item then return true end end
    return false
  end

  -- A plain MQTT client that records every frame on a topic.
  local function tap(topic)
    local c = assert(sts.connect(broker:options()))
    local frames = {}
    assert(c:subscribe(topic, function(_, payload) frames[#frames + 1] = payload end, { qos = 1 }))
    return frames, c
  end

  describe("three members and a key server", function()
    for _, variant in ipairs { "static", "update", "slotted", "static aesgcm" } do
      local method, cipher = variant:match("^(%a+) ?(%a*)$")
      it("gives every member every other member's messages (" .. variant .. ")", function()
        local server, prefix = serve { method = method, cipher = cipher ~= "" and cipher or nil, acl = {
          { "alice", "chat" }, { "bob", "chat" }, { "carol", "chat" } } }
        local a = assert(join("alice", "chat", prefix))
        local b = assert(join("bob", "chat", prefix))
        local c = assert(join("carol", "chat", prefix))
        local got = { alice = inbox(a), bob = inbox(b), carol = inbox(c) }
        assert.equal(method, a.method)
        assert.equal(cipher ~= "" and cipher or "chachapoly", c.cipher)
        assert.truthy(test.wait_until(function() return server:stats().members == 3 end))
        if method == "update" then
          -- Every join was a new epoch, and everyone holds the last one.
          assert.truthy(test.wait_until(function() return a.epoch == c.epoch and b.epoch == c.epoch end))
          assert.equal(server:group("chat").epoch, c.epoch)
        end
        assert(a:send("hello from alice"))
        assert(b:send("hello from bob"))
        assert(c:send("hello from carol"))
        assert.truthy(test.wait_until(function()
          return #got.alice == 2 and #got.bob == 2 and #got.carol == 2
        end))
        assert.truthy(has(got.bob, "alice: hello from alice"))
        assert.truthy(has(got.carol, "bob: hello from bob"))
        assert.truthy(has(got.alice, "carol: hello from carol"))
        assert.equal(0, a:stats().rejected_total + b:stats().rejected_total + c:stats().rejected_total)
        assert.equal(1, a:stats().echoes) -- its own frame, come back, is not delivered
        a:leave(); b:leave(); c:leave()
        server:close()
      end)
    end

    it("refuses a member not in the ACL, and one asking for a group it is not in", function()
      local server, prefix = serve { acl = { { "alice", "chat" } } }
      local events = {}
      server:on("event", function(ev, group, member, text) events[#events + 1] = ev .. " " .. tostring(text) end)
      local g, err = join("mallory", "chat", prefix)
      assert.is_nil(g)
      assert.matches("not in the access list", err)
      g, err = join("alice", "secret", prefix)
      assert.is_nil(g)
      assert.matches("not a member of group secret", err)
      assert.equal(2, server:stats().refusals)
      assert.equal(0, server:stats().members)
      assert.truthy(#events >= 2)
      server:close()
    end)

    it("rotates a static group's key on the operator's request", function()
      local server, prefix = serve { acl = { { "alice", "r1" }, { "bob", "r1" } } }
      local a = assert(join("alice", "r1", prefix))
      local b = assert(join("bob", "r1", prefix))
      local got, rekeys = inbox(b), {}
      b:on("rekey", function(epoch) rekeys[#rekeys + 1] = epoch end)
      assert.same({ "r1" }, server:groups())
      assert(server:rotate_all())
      assert.truthy(test.wait_until(function() return a.epoch == 2 and b.epoch == 2 end))
      assert.same({ 2 }, rekeys)
      assert(a:send("under the new key"))
      assert.truthy(test.wait_until(function() return #got == 1 end))
      local ok, err = server:rotate("nonesuch")
      assert.is_nil(ok)
      assert.matches("no group", err)
      a:leave(); b:leave()
      server:close()
    end)

    it("lets a script end while joined: the member is finalized with the host, cleanly", function()
      local server, prefix = serve { acl = { { "alice", "fin" } } }
      local script = dir .. "/finalize.lua"
      test.write_file(script, string.format([[
        local sts = require "sts"
        local c = assert(sts.connect { host = %q, port = %d })
        local g = assert(sts.group.join(c, { group = "fin", identity = %q, keyserver = %q, prefix = %q }))
        g:on("message", function() end)
        print("joined", g.index)
      ]], broker.host, broker.port, ids.alice.key, ids.ks.pub, prefix))
      local p = test.spawn_script(script)
      assert.truthy(p:wait(15), p:output())
      assert.equal(0, p:exit_code(), p:output())
      assert.matches("joined\t1", p:output())
      assert.is_nil(p:output():find("AddressSanitizer", 1, true), p:output())
      -- its session's KILL went out with the host: the key server saw it leave
      assert.truthy(test.wait_until(function() return server:stats().members == 0 end))
      server:close()
    end)

    it("lets the key server's event handler close the key server", function()
      local server, prefix = serve { method = "update", acl = { { "alice", "ev" }, { "bob", "ev" } } }
      local seen = {}
      server:on("event", function(ev)
        seen[#seen + 1] = ev
        if ev == "left" then server:close() end -- from the handler, while the core is rekeying
      end)
      local a = assert(join("alice", "ev", prefix))
      local b = assert(join("bob", "ev", prefix))
      a:leave()
      assert.truthy(test.wait_until(function() return has(seen, "left") end))
      assert.equal("joined", b:state()) -- b lives on, on the keys it holds
      b:close()
    end)

    it("takes the settings it is given over those its state file saved", function()
      local state = dir .. "/settings.state"
      local server, prefix, kc = serve { state = state, acl = { { "alice", "cfg" } } }
      local a = assert(join("alice", "cfg", prefix))
      assert.is_false(a.signed)
      server:close()
      kc:close()
      -- the same state file, and now the group must be signed
      local client = assert(sts.connect(broker:options()))
      local again = assert(sts.group.serve(client, { identity = ids.ks.key, acl = dir .. "/acl-" .. prefix,
        prefix = prefix, state = state, groups = { cfg = { signed = true } } }))
      assert.truthy(test.wait_until(function() return a.signed end, 10))
      a:leave()
      again:close()
    end)

    it("does not let a read-only member send", function()
      local server, prefix = serve { acl = { { "alice", "news" }, { "bob", "news", "r" } } }
      local a = assert(join("alice", "news", prefix))
      local b = assert(join("bob", "news", prefix))
      local got = inbox(b)
      local ok, err = b:send("may I?")
      assert.is_nil(ok)
      assert.matches("may not send", err)
      assert(a:send("news"))
      assert.truthy(test.wait_until(function() return #got == 1 end))
      assert.equal("alice: news", got[1])
      a:leave(); b:leave()
      server:close()
    end)
  end)

  describe("update groups", function()
    it("keep what came before from a joiner, and what comes after from a leaver", function()
      local server, prefix = serve { method = "update", acl = {
        { "alice", "ops" }, { "bob", "ops" }, { "carol", "ops" }, { "dave", "ops" } } }
      local frames = tap(sts.group.topic("ops", prefix))
      local a = assert(join("alice", "ops", prefix))
      local b = assert(join("bob", "ops", prefix))
      local c = assert(join("carol", "ops", prefix))
      local got_b, got_c = inbox(b), inbox(c)
      assert(a:send("before dave"))
      assert.truthy(test.wait_until(function() return #got_b == 1 and #frames == 1 end))
      local before = frames[1]

      -- Backward secrecy: dave cannot open what was sent before he joined.
      local d, _, dclient = assert(join("dave", "ops", prefix))
      local got_d = inbox(d)
      assert(dclient:publish(d.topic, before, { qos = 1 }))
      assert.truthy(test.wait_until(function() return d:stats().rejected.stale_epoch == 1 end))
      assert.equal(0, #got_d)

      -- Forward secrecy on leave: carol's session ends (she keeps her old keys
      -- and her subscription), the group is rekeyed, and she cannot open what
      -- follows.
      local epoch = server:group("ops").epoch
      c.session:close("gone")
      assert.truthy(test.wait_until(function() return server:group("ops").epoch == epoch + 1 end))
      assert.truthy(test.wait_until(function() return a.epoch == epoch + 1 and d.epoch == epoch + 1 end))
      assert.equal(epoch, c.epoch) -- what she holds is the old key
      assert(a:send("after carol"))
      assert.truthy(test.wait_until(function() return has(got_d, "alice: after carol") end))
      assert.truthy(has(got_b, "alice: after carol"))
      assert.truthy(test.wait_until(function() return c:stats().rejected.stale_epoch >= 1 end, 5))
      assert.is_false(has(got_c, "alice: after carol"))
      a:leave(); b:leave(); c:close(); d:leave()
      server:close()
    end)
  end)

  describe("leaving without a word", function()
    local function left_events(server)
      local left = {}
      server:on("event", function(ev, _, member, text)
        if ev == "left" then left[#left + 1] = member .. " " .. text end
      end)
      return left
    end

    it("counts a member whose session stays silent past the idle time as gone, and rekeys", function()
      local server, prefix = serve { method = "update", idle = 2.5, acl = { { "alice", "i" }, { "bob", "i" } } }
      local left = left_events(server)
      local a = assert(join("alice", "i", prefix, { keepalive = 1 }))
      local b = assert(join("bob", "i", prefix, { keepalive = 60 }))
      local epoch = a.epoch
      assert.truthy(test.wait_until(function() return #left == 1 end, 5))
      assert.equal("bob idle", left[1])
      assert.truthy(test.wait_until(function() return a.epoch == epoch + 1 end))
      assert.equal(1, server:stats().members)
      a:leave(); b:close()
      server:close()
    end)

    it("hears a dead member's MQTT will, pings it, and lets it go when it does not answer", function()
      local server, prefix = serve { method = "update", acl = { { "alice", "w" }, { "bob", "w" } } }
      local left = left_events(server)
      local a = assert(join("alice", "w", prefix))
      local p = test.spawn_fed(table.concat({ test.quote(test.sts_lua()), "scripts/group_chat.lua", "--host",
        broker.host, "--port", tostring(broker.port), "--group", "w", "--identity", test.quote(ids.bob.key),
        "--keyserver", test.quote(ids.ks.pub), "--prefix", prefix }, " "), dir)
      assert.truthy(p:wait_for("joined w", 10), p:output())
      assert.truthy(test.wait_until(function() return a.epoch == server:group("w").epoch end))
      local epoch = a.epoch
      os.execute(string.format("pkill -KILL -P %d", p.pid)) -- no LEAVE, no KILL, no DISCONNECT
      assert.truthy(test.wait_until(function() return #left == 1 end, 15))
      assert.equal("bob did not answer", left[1])
      assert.truthy(test.wait_until(function() return a.epoch == epoch + 1 end))
      p:kill()
      a:leave()
      server:close()
    end)
  end)

  describe("frames that must never be delivered", function()
    it("drops replayed, reordered, tampered, truncated and forged frames, counting each", function()
      local server, prefix = serve { acl = { { "alice", "t" }, { "bob", "t" } } }
      local topic = sts.group.topic("t", prefix)
      local frames, raw = tap(topic)
      local a = assert(join("alice", "t", prefix))
      local b = assert(join("bob", "t", prefix))
      local got = inbox(b)
      for i = 1, 3 do assert(a:send("m" .. i)) end
      assert.truthy(test.wait_until(function() return #got == 3 and #frames == 3 end))
      local function send_raw(payload) assert(raw:publish(topic, payload, { qos = 1 })) end
      local flip = function(s, i) return s:sub(1, i - 1) .. string.char(s:byte(i) ~ 1) .. s:sub(i + 1) end
      send_raw(frames[2])                       -- replayed
      send_raw(frames[1])                       -- replayed, and older than the newest
      -- Tampered frames get a counter b has not seen, so that the AEAD is what refuses them.
      local fresh = flip(frames[3], 16)
      send_raw(flip(fresh, #fresh))             -- tag tampered
      send_raw(flip(fresh, 18))                 -- ciphertext tampered
      send_raw(fresh)                           -- counter tampered (it is associated data)
      send_raw(frames[3]:sub(1, 20))            -- truncated
      send_raw(frames[3]:sub(1, 10))            -- shorter than a header
      send_raw("\1\16" .. string.rep("\0", 40)) -- forged: sender 0
      send_raw(flip(frames[3], 1))              -- bad version
      send_raw("hello")                         -- not a frame (nor version 1)
      assert.truthy(test.wait_until(function() return b:stats().rejected_total == 10 end))
      local r = b:stats().rejected
      assert.equal(2, r.replay)
      assert.equal(3, r.auth)
      assert.equal(2, r.truncated)
      assert.equal(1, r.malformed)
      assert.equal(2, r.bad_version)
      assert.equal(3, #got) -- and b still works:
      assert(a:send("m4"))
      assert.truthy(test.wait_until(function() return #got == 4 end))
      a:leave(); b:leave()
      server:close()
    end)

    it("rejects, in a signed group, an unsigned frame and one whose signature is not the sender's", function()
      local server, prefix = serve { signed = true, acl = { { "alice", "s" }, { "bob", "s" } } }
      local topic = sts.group.topic("s", prefix)
      local frames, raw = tap(topic)
      local a = assert(join("alice", "s", prefix))
      local b = assert(join("bob", "s", prefix))
      assert.is_true(a.signed)
      local got = inbox(b)
      assert(a:send("signed"))
      assert.truthy(test.wait_until(function() return #got == 1 and #frames == 1 end))
      local f = frames[1]
      assert.equal(string.char(0x11), f:sub(2, 2))
      assert.equal(#"signed" + 32 + 64, #f)
      -- The signature of another frame (a's own, over other bytes) does not verify.
      assert(a:send("other"))
      assert.truthy(test.wait_until(function() return #frames == 2 end))
      local g = frames[2]
      local swapped = g:sub(1, #g - 64) .. f:sub(#f - 63)
      assert(raw:publish(topic, swapped, { qos = 1 }))
      -- Without its signature, as an unsigned frame.
      assert(raw:publish(topic, f:sub(1, 1) .. "\16" .. f:sub(3, #f - 64), { qos = 1 }))
      assert.truthy(test.wait_until(function() return b:stats().rejected_total == 2 end))
      -- the first one's counter was not marked: it is opened now
      assert.equal(1, b:stats().rejected.auth + b:stats().rejected.replay)
      assert.equal(1, b:stats().rejected.suite)
      a:leave(); b:leave()
      server:close()
    end)
  end)

  describe("slotted groups", function()
    it("end a member's access when its granted interval ends, and reject far-off slots", function()
      local server, prefix = serve { method = "slotted", slot = 1, depth = 16, skew = 0, grant = 2,
                                     acl = { { "alice", "tick" }, { "bob", "tick" } } }
      local topic = sts.group.topic("tick", prefix)
      local frames, raw = tap(topic)
      local a = assert(join("alice", "tick", prefix, { grant = 2 }))
      local b = assert(join("bob", "tick", prefix, { grant = 60 }))
      local got = inbox(b)
      assert(a:send("in time"))
      assert.truthy(test.wait_until(function() return #got == 1 and #frames == 1 end))
      -- A frame claiming a slot far from now is refused before any decryption.
      local f = frames[1]
      local far = f:sub(1, 2) .. "\0\1\0\0" .. f:sub(7)
      assert(raw:publish(topic, far, { qos = 1 }))
      assert.truthy(test.wait_until(function() return b:stats().rejected.stale_epoch == 1 end))
      -- alice's grant ends (she does not renew: her session is closed), and
      -- with it her ability to send: no rekey message is needed.
      a.session:close("done")
      assert.truthy(test.wait_until(function() return a:send("late") == nil end, 6, 0.1))
      local ok, err = a:send("late")
      assert.is_nil(ok)
      assert.matches("grant ended", err)
      a:close(); b:leave()
      server:close()
    end)
  end)

  describe("the scripts", function()
    -- Signals the sts-lua process itself, not the shell around it (which
    -- writes the exit status).
    local function signal(p, name)
      os.execute(string.format("pkill -%s -P %d", name, p.pid))
    end

    local function keyserver(args)
      local p = test.spawn_script("scripts/keyserver.lua", "--host", broker.host, "--port", tostring(broker.port),
        "--identity", ids.ks.key, table.unpack(args))
      assert.truthy(p:wait_for("keyserver ready", 10), p:output())
      return p
    end

    local function chat(name, group, prefix)
      local p = test.spawn_fed(table.concat({ test.quote(test.sts_lua()), "scripts/group_chat.lua", "--host",
        broker.host, "--port", tostring(broker.port), "--group", group, "--identity", test.quote(ids[name].key),
        "--keyserver", test.quote(ids.ks.pub), "--prefix", prefix }, " "), dir)
      assert.truthy(p:wait_for("joined " .. group, 10), p:output())
      return p
    end

    it("chat through a key server; SIGHUP revokes a member; EOF and SIGTERM exit 0", function()
      local acl = dir .. "/acl-scripts"
      write_acl(acl, { { "alice", "room" }, { "bob", "room" }, { "carol", "room" } })
      local ks = keyserver { "--acl", acl, "--method", "update", "--prefix", "sc" }
      local a, b, c = chat("alice", "room", "sc"), chat("bob", "room", "sc"), chat("carol", "room", "sc")
      assert.truthy(test.wait_until(function() return ks:output():match("joined carol") end), ks:output())
      a:send("hello room")
      for _, p in ipairs { b, c } do assert.truthy(p:wait_for("alice: hello room"), p:output()) end
      assert.is_nil(a:output():match("alice: hello room"))

      -- carol is no longer listed: SIGHUP removes her at once.
      write_acl(acl, { { "alice", "room" }, { "bob", "room" } })
      signal(ks, "HUP")
      assert.truthy(c:wait_for("removed"), c:output() .. ks:output())
      assert.truthy(ks:wait_for("removed carol in room"), ks:output())
      b:send("carol is gone")
      assert.truthy(a:wait_for("bob: carol is gone"), a:output())
      assert.is_nil(c:output():match("carol is gone"))

      for _, p in ipairs { a, b, c } do
        p:close_input()
        assert.equal(0, p:wait(10) and p:exit_code(), p:output())
      end
      signal(ks, "TERM")
      assert.equal(0, ks:wait(10) and ks:exit_code(), ks:output())
      assert.is_nil(ks:output():match("AddressSanitizer"))
    end)

    it("restarts from its state file while members keep talking, without reusing a sender index", function()
      local acl = dir .. "/acl-restart"
      local state = dir .. "/ks-restart.state"
      write_acl(acl, { { "alice", "plant" }, { "bob", "plant" }, { "dave", "plant" } })
      local args = { "--acl", acl, "--method", "update", "--prefix", "rs", "--state", state }
      local ks = keyserver(args)
      local a = assert(join("alice", "plant", "rs", { keepalive = 1 }))
      local b = assert(join("bob", "plant", "rs", { keepalive = 1 }))
      local got = inbox(b)
      assert.equal("600", test.file_mode(state))
      signal(ks, "TERM")
      assert.equal(0, ks:wait(10) and ks:exit_code(), ks:output())

      -- The key server is down: the group goes on.
      assert(a:send("while it is down"))
      assert.truthy(test.wait_until(function() return has(got, "alice: while it is down") end))

      ks = keyserver(args)
      -- Both come back on their own, keeping their indexes, with no rekey.
      local epoch = a.epoch
      assert.truthy(test.wait_until(function()
        return ks:output():match("joined alice in plant: resumed") and ks:output():match("joined bob in plant: resumed")
      end, 15), ks:output())
      assert.equal(epoch, a.epoch)
      -- A new member: a new epoch for everyone, and an index nobody had.
      local d = assert(join("dave", "plant", "rs"))
      assert.truthy(test.wait_until(function() return a.epoch == d.epoch and b.epoch == d.epoch end))
      assert.is_true(d.index ~= a.index and d.index ~= b.index)
      assert.is_true(d.index > math.max(a.index, b.index))
      assert(d:send("dave here"))
      assert.truthy(test.wait_until(function() return has(got, "dave: dave here") end))
      a:leave(); b:leave(); d:leave()
      signal(ks, "TERM")
      assert.equal(0, ks:wait(10) and ks:exit_code(), ks:output())
    end)

    it("refuses a corrupt or truncated state file, and keeps it as it is", function()
      local acl = dir .. "/acl-corrupt"
      local state = dir .. "/ks-corrupt.state"
      write_acl(acl, { { "alice", "x" } })
      local ks = keyserver { "--acl", acl, "--state", state, "--prefix", "cs" }
      local a = assert(join("alice", "x", "cs"))
      signal(ks, "TERM")
      assert.equal(0, ks:wait(10) and ks:exit_code(), ks:output())
      a:close()
      local good = test.read_file(state)
      for _, bad in ipairs { good:sub(1, #good - 1), good:sub(1, 20),
                             good:sub(1, 40) .. string.char(good:byte(41) ~ 0x40) .. good:sub(42) } do
        test.write_file(state, bad)
        local p = test.spawn_script("scripts/keyserver.lua", "--host", broker.host, "--port", tostring(broker.port),
          "--identity", ids.ks.key, "--acl", acl, "--state", state, "--prefix", "cs")
        assert.truthy(p:wait(10), p:output())
        assert.equal(1, p:exit_code(), p:output())
        assert.matches("state", p:output())
        assert.is_nil(p:output():match("keyserver ready"))
        assert.equal(bad, test.read_file(state))
      end
    end)
  end)
end)
