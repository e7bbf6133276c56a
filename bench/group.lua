-- Native groups through a local mosquitto, every role a separate sts-lua
-- process, the key server one of them:
--   1. rekey at scale: --members N in one `update` group, joined from
--      --processes P processes (one MQTT client each, its members joining
--      one after another); join latency over the N joins; then one more
--      member joining and leaving the full group, and --rekeys R rotations
--      (server:rotate): the time from the trigger until the last member's
--      "rekey" handler ran, the CPU of every process per member and rekey,
--      and the key server's RSS;
--   2. throughput, QoS 0: a group of 3 members (one sends), against one plain
--      publisher and 3 plain subscribers (bench/pubsub.lua), rounds
--      alternating; msg/s per receiver and the CPU per message of every
--      process, broker and key server included (median of --repeat);
--   3. the SMQTT format: join latency, and throughput as in 2 at QoS 2 (the
--      format's only QoS), against plain MQTT at QoS 2.
--   build/sts-lua bench/group.lua [--members N] [--processes P] [--rekeys R]
--     [--count M] [--repeat R] [--size S] [--part 1|2]
-- The key server is this script's keyserver role: sts.group.serve as in
-- scripts/keyserver.lua, SIGUSR1 rotating the group, and SIGUSR2 printing
-- its stats and where its memory is.
-- Each role is also started by itself (see the roles below), e.g.
--   sts-lua bench/group.lua --role members -p PORT --keys DIR --first 1 --members 250
local sts = require "sts"
local cli = require "sts.cli"
local test = require "sts.test"
local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local median, percentile = common.median, common.percentile

local opts = cli.parse(arg, {
  usage = "sts-lua bench/group.lua [--members N] [--processes P] [--rekeys R] [--count M] [--repeat R] "
    .. "[--size S] [--part 1|2|3]",
  options = {
    role = { "--role" },
    port = { "-p", "--port", number = true },
    keys = { "--keys" },
    members = { "--members", number = true, default = 1000 },
    processes = { "--processes", number = true, default = 4 },
    rekeys = { "--rekeys", number = true, default = 10 },
    count = { "--count", number = true, default = 50000 },
    ["repeat"] = { "--repeat", number = true, default = 5 },
    size = { "--size", number = true },
    part = { "--part", number = true },
    first = { "--first", number = true, default = 1 },
    group = { "--group", default = "bench" },
    method = { "--method", default = "update" },
    format = { "--format", default = "native" },
  },
})

io.stdout:setvbuf("line")
sts.log.level = "warn" -- every join is logged at "info"

local PREFIX = "bench/group"

local function connect()
  return assert(sts.connect{ host = "127.0.0.1", port = opts.port })
end

-- Member i's identity, made by the comparing process in opts.keys (read
-- before a join is timed: the joins measured do not read files).
local function member_key(i)
  return assert(sts.load_key(opts.keys .. "/member-" .. i .. ".key"))
end

local SMQTT_PSK = "aaaaaaaabbbbbbbbccccccccdddddddd"

local function join(client, key, qos)
  return sts.group.join(client, { group = opts.group, identity = key, keyserver = opts.keys .. "/ks.pub",
                                  prefix = PREFIX, timeout = 30, qos = qos })
end

-- Member i of the group, in the format asked (an SMQTT member is known by its
-- id and the shared key: it has no identity).
local function join_member(client, i, qos)
  if opts.format ~= "smqtt" then return join(client, member_key(i), qos) end
  return sts.group.join(client, { format = "smqtt", method = opts.method, group = opts.group,
                                  member = string.format("client-%05d", i), psk = SMQTT_PSK, timeout = 30 })
end

-- --- roles -----------------------------------------------------------------------

-- The key server: every group of --method; SIGUSR1 rotates --group's key,
-- SIGUSR2 prints its stats.
local function keyserver()
  local client = connect()
  local settings = { identity = opts.keys .. "/ks.key", acl = opts.keys .. "/acl", prefix = PREFIX,
                     method = opts.method }
  if opts.format == "smqtt" then settings = { format = "smqtt", method = opts.method, psk = SMQTT_PSK } end
  local server = assert(sts.group.serve(client, settings))
  sts.signal("USR1", function() assert(server:rotate(opts.group)) end)
  sts.signal("USR2", function()
    local s, sessions = server:stats(), 0
    for _, session in pairs(server.listener:sessions()) do sessions = sessions + session:stats().memory end
    print(string.format("stats: members %d rekeys %d messages_out %d memory %d sessions_memory %d lua_kb %.0f",
      s.members, s.rekeys, s.messages_out, s.memory, sessions, collectgarbage("count")))
  end)
  sts.signal("TERM", function() sts.stop() end)
  print("ready")
  sts.run()
end

-- --members members (--first on) joining one after another over one MQTT
-- client. Prints every join's duration, then, for each epoch that reaches
-- all of them, when its "rekey" handler ran for the first and the last one.
local function members()
  local client = connect()
  local groups, durations, failures = {}, {}, 0
  local epochs, all_joined = {}, false
  local function on_rekey(epoch)
    local now = sts.now()
    local e = epochs[epoch] or { n = 0, first = now }
    epochs[epoch] = e
    e.n, e.last = e.n + 1, now
    if all_joined and e.n == #groups then
      print(string.format("epoch %d first %.6f last %.6f", epoch, e.first, e.last))
      epochs[epoch] = nil
    end
  end
  sts.task(function()
    for i = opts.first, opts.first + opts.members - 1 do
      local key = opts.format ~= "smqtt" and member_key(i)
      local t0 = sts.now()
      local g, err
      if key then g, err = join(client, key) else g, err = join_member(client, i) end
      if g then
        durations[#durations + 1] = string.format("%.6f", sts.now() - t0)
        groups[#groups + 1] = g
        g:on("rekey", on_rekey)
      else
        failures = failures + 1
        io.stderr:write("member ", i, ": ", tostring(err), "\n")
      end
    end
    epochs, all_joined = {}, true
    print(string.format("joined %d failed %d durations %s", #groups, failures, table.concat(durations, " ")))
  end)
  sts.signal("TERM", function() sts.stop() end)
  sts.run()
end

-- Counts a group's messages as bench/pubsub.lua's receiver counts a topic's.
local function group_recv()
  local client = connect()
  local g = assert(join_member(client, opts.first, 0))
  local n, first, last = 0, nil, nil
  g:on("message", function()
    n = n + 1
    last = sts.now()
    if n == 1 then first = last end
    if n == opts.count then sts.stop() end
  end)
  print("ready")
  sts.every(0.5, function() if last and sts.now() - last > 3 then sts.stop() end end)
  sts.run()
  local elapsed = (last or 0) - (first or 0)
  print(string.format("received %d in %.3f s: %.0f msg/s", n, elapsed, n > 1 and (n - 1) / elapsed or 0))
  local st = g:stats()
  if st.rejected_total > 0 then
    for reason, count in pairs(st.rejected) do
      if count > 0 then io.stderr:write("rejected: ", reason, " ", count, "\n") end
    end
  end
end

local function group_send()
  local client = connect()
  local g = assert(join_member(client, opts.first, 0))
  sts.sleep(0.3) -- the receivers have our roster entry
  local payload = string.rep("x", opts.size)
  sts.task(function()
    for i = 1, opts.count do
      assert(g:send(payload))
      if i % 500 == 0 then coroutine.yield() end
    end
    assert(client:flush(60), "messages still unsent after 60 s")
    -- Our own frames come back, as to every subscriber: wait for them, so the
    -- broker has read all we sent before we close with some unread (a
    -- socket closed with unread data is reset, and the broker drops what it
    -- had not read yet).
    test.wait_until(function() return g:stats().echoes >= opts.count end, 10)
    client:disconnect()
    sts.stop()
  end)
  sts.run()
end

-- --- comparing -----------------------------------------------------------------

local function field(text, name)
  return tonumber(text:match(name .. " ([%d.]+)"))
end

local function make_keys(dir, n)
  local keyfiles = require "sts.keyfiles"
  assert(keyfiles.write_pair(dir .. "/ks"))
  local acl = {}
  for i = 1, n do
    local key <close>, public = sts.keygen()
    assert(key:save(dir .. "/member-" .. i .. ".key"))
    acl[i] = string.format("%s member-%d %s rw", public:match("\n(%x+)"), i, opts.group)
  end
  test.write_file(dir .. "/acl", table.concat(acl, "\n") .. "\n")
end

local function spawn_keyserver(ctx, method, format)
  local ks = test.spawn(string.format("exec %s --role keyserver -p %d --keys %s --method %s --format %s", ctx.me,
    ctx.port, test.quote(opts.keys), method, format or "native"))
  assert(ks:wait_for("ready"), ks:output())
  return ks
end

-- Waits until every member process has printed epoch's line; returns the
-- first and the last time a member's handler ran, or nil after 30 s.
local function epoch_reached(procs, epoch)
  local pattern = "epoch " .. epoch .. " first ([%d.]+) last ([%d.]+)"
  local first, last
  local ok = test.wait_until(function()
    first, last = math.huge, 0
    for _, p in ipairs(procs) do
      local f, l = p:output():match(pattern)
      if not f then return false end
      first, last = math.min(first, tonumber(f)), math.max(last, tonumber(l))
    end
    return true
  end, 30, 0.005)
  if not ok then return nil end
  return first, last
end

local function cpu_of(pids)
  local t = {}
  for name, pid in pairs(pids) do t[name] = common.cpu_seconds(pid) end
  return t
end

local function ms(s) return string.format("%.1f", 1000 * s) end

local function rekey_at_scale(ctx)
  local n, np = opts.members, opts.processes
  print(string.format("\n1. Rekey at scale: %d members of one update group in %d processes (one MQTT client each, "
    .. "joining one at a time: %d joins at once)", n, np, np))
  local ks = spawn_keyserver(ctx, "update")
  local procs, pids = {}, { keyserver = ks.pid, broker = ctx.broker.process.pid }
  local t0 = sts.now()
  for p = 1, np do
    local first, last = (p - 1) * n // np + 1, p * n // np
    procs[p] = test.spawn(string.format("exec %s --role members -p %d --keys %s --first %d --members %d", ctx.me,
      ctx.port, test.quote(opts.keys), first, last - first + 1))
    pids["members " .. p] = procs[p].pid
  end
  local durations, joined = {}, 0
  for p, proc in ipairs(procs) do
    assert(proc:wait_for("joined %d+", 600), "member process " .. p .. ": " .. proc:output())
    local out = proc:output()
    joined = joined + field(out, "joined")
    for d in out:match("durations ([^\n]*)"):gmatch("%S+") do durations[#durations + 1] = tonumber(d) end
  end
  local join_wall = sts.now() - t0
  print(string.format("joins: %d of %d in %.1f s; sts.group.join median %s ms, p95 %s ms, max %s ms",
    joined, n, join_wall, ms(median(durations)), ms(percentile(durations, 0.95)), ms(percentile(durations, 1))))
  assert(joined == n, "members failed to join: see their stderr")
  sts.sleep(1) -- the last roster announcements are out
  os.execute("kill -USR2 " .. ks.pid)
  assert(ks:wait_for("stats: [^\n]*"), ks:output())
  local stats = ks:output()
  print(string.format("key server with %d members: VmRSS %d kB (%.1f MiB); server:stats().memory %d bytes, its "
    .. "sessions' session:stats().memory %d bytes, Lua heap %d kB", n, common.rss_kb(ks.pid),
    common.rss_kb(ks.pid) / 1024, field(stats, "memory"), field(stats, "sessions_memory"), field(stats, "lua_kb")))

  -- One more member joins the full group, and leaves: each a rekey to all.
  local client = connect()
  local joins, join_spread, leave_spread, epoch = {}, {}, {}, nil
  for r = 1, opts["repeat"] do
    local key = member_key(n + 1)
    local start = sts.now()
    local g = assert(join(client, key))
    joins[r] = sts.now() - start
    local _, last = epoch_reached(procs, g.epoch)
    assert(last, "epoch " .. g.epoch .. " did not reach every member")
    join_spread[r] = last - start
    epoch = g.epoch + 1
    start = sts.now()
    g:leave()
    _, last = epoch_reached(procs, epoch)
    assert(last, "epoch " .. epoch .. " (a leave) did not reach every member")
    leave_spread[r] = last - start
  end
  client:disconnect()
  print(string.format("one join into the full group (median of %d): sts.group.join %s ms; its rekey reached all %d "
    .. "members %s ms after the join began (max %s)", opts["repeat"], ms(median(joins)), n, ms(median(join_spread)),
    ms(percentile(join_spread, 1))))
  print(string.format("its leave: the rekey reached all %d members %s ms after g:leave() (max %s)", n,
    ms(median(leave_spread)), ms(percentile(leave_spread, 1))))

  -- Rotations, one at a time.
  local spreads, firsts = {}, {}
  local before = cpu_of(pids)
  for r = 1, opts.rekeys do
    epoch = epoch + 1
    local start = sts.now()
    os.execute("kill -USR1 " .. ks.pid)
    local first, last = epoch_reached(procs, epoch)
    assert(last, "rotation to epoch " .. epoch .. " did not reach every member: " .. ks:output())
    spreads[r], firsts[r] = last - start, first - start
  end
  local after = cpu_of(pids)
  print(string.format("server:rotate (SIGUSR1), %d rotations: trigger to the last member median %s ms, max %s ms "
    .. "(to the first: %s ms)", opts.rekeys, ms(median(spreads)), ms(percentile(spreads, 1)), ms(median(firsts))))
  local names = { "keyserver", "broker" }
  for p = 1, np do names[#names + 1] = "members " .. p end
  local parts, members_cpu = {}, 0
  for _, name in ipairs(names) do
    local cpu = after[name] - before[name]
    if name:match("^members") then members_cpu = members_cpu + cpu
    else parts[#parts + 1] = string.format("%s %.2f", name, 1e6 * cpu / (n * opts.rekeys)) end
  end
  parts[#parts + 1] = string.format("member processes %.2f", 1e6 * members_cpu / (n * opts.rekeys))
  print(string.format("CPU per member per rekey, us: %s (CPU ticks of 10 ms: %d rekeys of %d members)",
    table.concat(parts, ", "), opts.rekeys, n))
  ks:kill() -- first, so the members' ends cause no rekeys
  for _, p in ipairs(procs) do p:kill() end
end

-- One round: receivers ready first, then the sender; every process's CPU
-- (sender and receivers from their shells' stat lines, the long-lived broker
-- and key server sampled around the round).
local function round(ctx, recv_cmds, send_cmd, sampled)
  local before = cpu_of(sampled)
  local receivers = {}
  for k, cmd in ipairs(recv_cmds) do
    receivers[k] = test.spawn(common.with_cpu(cmd))
    assert(receivers[k]:wait_for("ready"), receivers[k]:output())
  end
  local sender = test.spawn(common.with_cpu(send_cmd))
  local result = { rates = {}, received = {}, recv_cpu = 0 }
  for k, r in ipairs(receivers) do
    assert(r:wait_for("child%-stat", 180), "receiver " .. k .. ": " .. r:output())
    local out = r:output()
    result.rates[k], result.received[k] = tonumber(out:match("(%d+) msg/s")) or 0, tonumber(out:match("received (%d+)"))
    result.recv_cpu = result.recv_cpu + common.child_cpu(out) / #receivers
  end
  assert(sender:wait_for("child%-stat", 30), "sender: " .. sender:output())
  result.send_cpu = common.child_cpu(sender:output())
  local after = cpu_of(sampled)
  result.broker_cpu, result.ks_cpu = after.broker - before.broker, (after.keyserver or 0) - (before.keyserver or 0)
  result.rate = median(result.rates)
  return result
end

local function summary(label, size, runs, count)
  local function med(key)
    local list = {}
    for k, r in ipairs(runs) do list[k] = r[key] end
    return median(list)
  end
  local rates, received = {}, {}
  for k, r in ipairs(runs) do rates[k], received[k] = r.rate, table.concat(r.received, "/") end
  local us = function(key) return 1e6 * med(key) / count end
  print(string.format("%5d B  %-10s %8.0f msg/s per receiver (rounds: %s; received: %s)", size, label, med("rate"),
    table.concat(rates, " "), table.concat(received, " ")))
  print(string.format("         %-10s CPU per message, us: sender %.2f, each receiver %.2f, broker %.2f, key server %.2f;"
    .. " all %.2f", "", us("send_cpu"), us("recv_cpu"), us("broker_cpu"), us("ks_cpu"),
    us("send_cpu") + #runs[1].rates * us("recv_cpu") + us("broker_cpu") + us("ks_cpu")))
  return med("rate")
end

-- A group of 3 members (one sends, all 3 subscribed) against one plain
-- publisher and 3 subscribers at the same QoS: the broker delivers each
-- message 3 times in both.
local function throughput(ctx, format, qos, count)
  print(string.format("\n%s throughput, QoS %d, %d messages: a group of 3 members (one sends, all 3 subscribed) "
    .. "against one plain publisher and 3 subscribers, each in its own process "
    .. "(median of %d rounds, alternating)", format == "smqtt" and "3. SMQTT" or "2. Native", qos, count,
    opts["repeat"]))
  local ks = spawn_keyserver(ctx, "static", format)
  local sizes = opts.size and { opts.size } or { 64, 1024 }
  for _, size in ipairs(sizes) do
    local args = string.format("-p %d --count %d --size %d", ctx.port, count, size)
    local pubsub = function(r)
      return string.format("%s bench/pubsub.lua --role %s --qos %d %s", test.quote(test.sts_lua()), r, qos, args)
    end
    local member = function(r, i)
      return string.format("%s --role %s --keys %s --first %d --format %s --method static %s", ctx.me, r,
        test.quote(opts.keys), i, format, args)
    end
    local plain, grouped = {}, {}
    for k = 1, opts["repeat"] do
      plain[k] = round(ctx, { pubsub("recv"), pubsub("recv"), pubsub("recv") }, pubsub("send"),
        { broker = ctx.broker.process.pid })
      -- A group of 3 members: the sender is a member, subscribed as the others
      -- are, so the broker delivers each message 3 times, as to 3 plain subscribers.
      grouped[k] = round(ctx, { member("group-recv", 1), member("group-recv", 2) },
        member("group-send", 3), { broker = ctx.broker.process.pid, keyserver = ks.pid })
    end
    local p = summary("plain MQTT", size, plain, count)
    local label = format == "smqtt" and "SMQTT" or "group"
    local g = summary(label, size, grouped, count)
    print(string.format("%5d B  %s: %.2f of plain", size, label, p > 0 and g / p or 0))
  end
  ks:kill()
end

-- The SMQTT format: join latency (one member at a time into a static group),
-- then throughput at QoS 2, the only QoS the format uses.
local function smqtt(ctx)
  local n = 50
  print(string.format("\n3. SMQTT format: %d sts.group.join in a row into a static group", n))
  local ks = spawn_keyserver(ctx, "static", "smqtt")
  local p = test.spawn(string.format("exec %s --role members -p %d --keys %s --first 1 --members %d --format smqtt "
    .. "--method static", ctx.me, ctx.port, test.quote(opts.keys), n))
  assert(p:wait_for("joined %d+", 120), p:output())
  local durations = {}
  for d in p:output():match("durations ([^\n]*)"):gmatch("%S+") do durations[#durations + 1] = tonumber(d) end
  print(string.format("SMQTT join: median %s ms, p95 %s ms, max %s ms", ms(median(durations)),
    ms(percentile(durations, 0.95)), ms(percentile(durations, 1))))
  p:kill()
  ks:kill()
  throughput(ctx, "smqtt", 2, math.min(opts.count, 10000))
end

local function compare()
  assert(opts["repeat"] >= 1 and opts.processes >= 1 and opts.members >= opts.processes,
    "--repeat and --processes must be at least 1, --members at least --processes")
  sts.log.level = "error" -- the leaves of our own joiner's session
  local broker = test.broker()
  local ctx = { broker = broker, port = broker.port, me = test.quote(test.sts_lua()) .. " bench/group.lua" }
  opts.keys, opts.port = test.tmpdir(), broker.port
  make_keys(opts.keys, math.max(opts.members + 1, 4))
  print(string.format("sts-lua %s, mosquitto on 127.0.0.1:%d", sts.version, broker.port))
  if opts.part == nil or opts.part == 1 then rekey_at_scale(ctx) end
  if opts.part == nil or opts.part == 2 then throughput(ctx, "native", 0, opts.count) end
  if opts.part == nil or opts.part == 3 then smqtt(ctx) end
  broker:stop()
  test.cleanup()
end

local roles = { keyserver = keyserver, members = members, ["group-recv"] = group_recv, ["group-send"] = group_send }
if opts.role then
  assert(roles[opts.role], "unknown role " .. opts.role)()
else
  compare()
end
