-- The SMQTT compatibility format of sts.group: an sts-lua key server and
-- sts-lua members on the Java reference's wire format, through a real broker,
-- in this process and as sts-lua processes. The reference's own bytes are
-- checked byte for byte in src/proto/tests/test_smqtt.c.
local sts = require "sts"
local test = require "sts.test"

local PSK = "aaaaaaaabbbbbbbbccccccccdddddddd"

describe("the SMQTT format", function()
  local broker, dir

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  local function connect(id)
    return assert(sts.connect(broker:options { client_id = id }))
  end

  -- A key server for one test: it stops with the test, passed or not, so
  -- that no other test's key server answers the next test's members.
  local function serve(opts)
    local c = connect("server")
    opts.format = "smqtt"
    opts.psk = opts.psk or (not opts.psk_file and PSK) or nil
    local server = assert(sts.group.serve(c, opts))
    finally(function()
      server:close()
      c:close()
    end)
    return server, c
  end

  local topic_count = 0
  local function fresh_topic()
    topic_count = topic_count + 1
    return "smqtt/test" .. topic_count
  end

  local function join(member, group, method, extra)
    local c = connect(member)
    local opts = { format = "smqtt", method = method, group = group, member = member, psk = PSK }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local g, err = sts.group.join(c, opts)
    return g, err, c
  end

  local function inbox(g)
    local got = {}
    g:on("message", function(text, info) got[#got + 1] = info.topic .. ": " .. text end)
    return got
  end

  for _, method in ipairs { "static", "update", "slotted" } do
    it("carries messages between three sts-lua members (" .. method .. ")", function()
      local server = serve { method = method, slot = 2 }
      local group = fresh_topic()
      local a = assert(join("client-00001", group, method, { expires = 60 }))
      local b = assert(join("client-00002", group, method, { expires = 60 }))
      local c = assert(join("client-00003", group, method, { expires = 60 }))
      local got_b, got_c = inbox(b), inbox(c)
      -- update: every join rekeyed the members before it; the reference's
      -- frames name no key, so wait until all hold the last one.
      assert.truthy(test.wait_until(function() return method ~= "update" or (a.key == c.key and b.key == c.key) end))
      assert(a:send("hello"))
      assert.truthy(test.wait_until(function() return #got_b == 1 and #got_c == 1 end))
      assert.equal(group .. ": hello", got_b[1])
      assert.equal(3, server:stats().joins)
      a:leave(); b:leave(); c:leave()
      server:close()
    end)
  end

  it("rekeys an update group on each join and on our members' authenticated leave", function()
    local server = serve { method = "update" }
    local group = fresh_topic()
    local a = assert(join("client-10001", group, "update"))
    assert.equal(2, a.seq) -- its first response had seq 1 (its stored 0, plus one)
    local b = assert(join("client-10002", group, "update"))
    assert.truthy(test.wait_until(function() return a.seq == 3 end)) -- a's rekey: seq 2
    assert.equal(a.key, b.key)
    local c = assert(join("client-10003", group, "update"))
    assert.truthy(test.wait_until(function() return a.seq == 4 and b.seq == 3 end))
    assert.equal(a.key, c.key)
    local old = c.key
    c:leave() -- our own leave: the key server rekeys the others
    assert.truthy(test.wait_until(function() return a.seq == 5 and b.seq == 4 end))
    assert.equal(a.key, b.key)
    assert.are_not.equal(old, a.key)
    assert.equal(1, server:stats().leaves)
    -- What a leaver kept opens nothing that follows.
    local frames, raw = {}, connect("tap-1")
    assert(raw:subscribe(group, function(_, p) frames[#frames + 1] = p end, { qos = 2 }))
    local got = inbox(b)
    assert(a:send("after the leave"))
    assert.truthy(test.wait_until(function() return #frames == 1 and #got == 1 end))
    local opened, why = sts.smqtt.open(old, frames[1])
    assert.is_nil(opened)
    assert.truthy(why == "bad MAC" or why == "bad padding", why)
    a:leave(); b:leave()
    server:close()
  end)

  it("goes on across slot boundaries, and ends a member's sending when its grant expires", function()
    local server = serve { method = "slotted", slot = 1 }
    local group = fresh_topic()
    local a = assert(join("client-20001", group, "slotted", { expires = 3 }))
    local b = assert(join("client-20002", group, "slotted", { expires = 60 }))
    local got = inbox(b)
    local slots = {}
    b:on("message", function(text, info) got[#got + 1] = text; slots[info.slot] = true end)
    -- Messages in at least three consecutive slots.
    local sent = 0
    assert.truthy(test.wait_until(function()
      if a:send("tick " .. sent) then sent = sent + 1 end
      local n = 0
      for _ in pairs(slots) do n = n + 1 end
      return n >= 3
    end, 10, 0.25))
    -- a's grant (3 s from its join) ends: it cannot send any more.
    assert.truthy(test.wait_until(function() return a:send("late") == nil end, 10, 0.25))
    local ok, err = a:send("late")
    assert.is_nil(ok)
    assert.matches("grant ended", err)
    a:leave(); b:leave()
    server:close()
  end)

  it("rejects a frame for a slot far from now, counting it", function()
    local server = serve { method = "slotted", slot = 1 }
    local group = fresh_topic()
    local a = assert(join("client-30001", group, "slotted", { expires = 600 }))
    local b = assert(join("client-30002", group, "slotted", { expires = 600 }))
    local frames, raw = {}, connect("tap-2")
    assert(raw:subscribe(group, function(_, p) frames[#frames + 1] = p end, { qos = 2 }))
    assert(a:send("now"))
    assert.truthy(test.wait_until(function() return #frames == 1 end))
    -- The same bytes moved 100 slots on: a's cover holds that slot, but it is
    -- not now, and the reference would have taken it.
    local f = frames[1]
    local index = string.unpack(">I2", f)
    assert(raw:publish(group, string.pack(">I2", index + 100) .. f:sub(3), { qos = 2 }))
    assert.truthy(test.wait_until(function() return (b:stats().rejected.stale_slot or 0) == 1 end))
    a:leave(); b:leave()
    server:close()
  end)

  it("refuses a member with the wrong PSK, and one not in the PSK table", function()
    local psks = dir .. "/psks"
    test.write_file(psks, "# member key\nclient-40001 " .. PSK .. "\nclient-40002 00112233445566778899aabbccddeeff\n")
    local server = serve { method = "static", psk_file = psks }
    local group = fresh_topic()
    assert(join("client-40001", group, "static", { timeout = 5 }))
    local g, err = join("client-40002", group, "static", { timeout = 1 }) -- sends the default PSK: wrong
    assert.is_nil(g)
    assert.matches("timeout", err)
    g, err = join("client-40003", group, "static", { timeout = 1 })
    assert.is_nil(g)
    local st = server:stats()
    assert.equal(1, st.rejected.auth)
    assert.equal(1, st.rejected["unknown member"])
    -- a new table (SIGHUP in keyserver.lua): client-40003 is in it now
    test.write_file(psks, "client-40003 " .. PSK .. "\n")
    assert(server:reload())
    assert(join("client-40003", group, "static", { timeout = 5 }))
    server:close()
  end)

  it("rejects malformed requests, responses and frames with a counted reason", function()
    local server = serve { method = "static" }
    local group = fresh_topic()
    local a = assert(join("client-50001", group, "static"))
    local raw = connect("tap-3")
    local function pub(topic, payload) assert(raw:publish(topic, payload, { qos = 2 })) end
    -- to the key server
    pub("gkd/1/join", "{not json")
    pub("gkd/1/join", '{"member":"x","group":"g","seq":0,"auth":"zz"}')
    pub("gkd/1/join", '{"member":"x","group":"g","auth":"00"}')
    assert.truthy(test.wait_until(function() return server:stats().rejected_total == 3 end))
    -- to the member: a response nobody asked for, bad base64, garbage
    pub("gkd/1/client-50001", '{"member":"client-50001","group":"' .. group
      .. '","seq":9,"encryptedKeyMaterial":"!!!","auth":"00112233445566778899aabbccddeeff"}')
    pub("gkd/1/client-50001", "garbage")
    -- on the group topic: truncated, and tampered
    pub(group, "\0\0\1\2")
    local frames = {}
    assert(raw:subscribe(group, function(_, p) if #p > 4 then frames[#frames + 1] = p end end, { qos = 2 }))
    local b = assert(join("client-50002", group, "static"))
    assert(b:send("real"))
    assert.truthy(test.wait_until(function() return #frames == 1 end))
    local f = frames[1]
    pub(group, f:sub(1, #f - 1) .. string.char(f:byte(#f) ~ 1))
    pub(group, f:sub(1, 40))
    assert.truthy(test.wait_until(function() return a:stats().rejected_total == 5 end))
    local r = a:stats().rejected
    local seen = {}
    for k, v in pairs(r) do seen[#seen + 1] = k .. "=" .. v end
    table.sort(seen)
    assert.equal(1, r.auth, table.concat(seen, " "))
    assert.truthy((r.truncated or 0) + (r["bad length"] or 0) >= 2)
    assert.equal(1, a:stats().received) -- the real one
    a:leave(); b:leave()
    server:close()
  end)

  it("answers a request the Java reference sent, as the reference would", function()
    local wire = "../shared/vectors/smqtt/static-wire.txt"
    local f = io.open(wire, "r")
    if not f then
      print("skipped: " .. wire .. " is absent")
      return
    end
    local first = f:read("l")
    f:close()
    local request = sts.unhex(first:match("hex=(%x+)"))
    local server = serve { method = "static" }
    local raw = connect("tap-4")
    local answers = {}
    assert(raw:subscribe("gkd/1/client-11564", function(_, p) answers[#answers + 1] = p end, { qos = 2 }))
    assert(raw:publish("gkd/1/join", request, { qos = 2 }))
    assert.truthy(test.wait_until(function() return #answers == 1 end))
    local resp, material = sts.smqtt.decode_response(answers[1], sts.unhex(PSK))
    assert.truthy(resp, material)
    assert.equal("client-11564", resp.member)
    assert.equal("test", resp.group)
    assert.equal(0, resp.seq)
    assert.matches("^%x+$", material)
    assert.equal(32, #material)
    -- the field order the reference writes
    assert.matches('^{"member":"client%-11564","group":"test","seq":0,"encryptedKeyMaterial":"[%w+/=]+","auth":"%x+"}$',
      answers[1])
    server:close()
  end)

  it("runs as scripts: keyserver.lua and group_chat.lua, exit 0 on EOF and SIGTERM", function()
    local ks = test.spawn_script("scripts/keyserver.lua", "--format", "smqtt", "--method", "static",
      "--host", broker.host, "--port", tostring(broker.port), "--psk", PSK)
    assert.truthy(ks:wait_for("keyserver ready"), ks:output())
    local group = fresh_topic()
    local function chat(member)
      local p = test.spawn_fed(table.concat({ test.quote(test.sts_lua()), "scripts/group_chat.lua", "--format",
        "smqtt", "--method", "static", "--group", group, "--member", member, "--psk", PSK, "--host", broker.host,
        "--port", tostring(broker.port) }, " "), dir)
      assert.truthy(p:wait_for("joined " .. group), p:output())
      return p
    end
    local a, b = chat("client-60001"), chat("client-60002")
    a:send("hello smqtt")
    assert.truthy(b:wait_for(group .. ": hello smqtt"), b:output())
    assert.truthy(ks:output():match("SMQTT format"), ks:output()) -- it says what the format lacks
    for _, p in ipairs { a, b } do
      p:close_input()
      assert.equal(0, p:wait(10) and p:exit_code(), p:output())
    end
    os.execute(string.format("pkill -TERM -P %d", ks.pid))
    assert.equal(0, ks:wait(10) and ks:exit_code(), ks:output())
  end)
end)
