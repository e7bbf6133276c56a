--- sts.test: real brokers and real processes for busted specs.
--
-- Starts a mosquitto on a free 127.0.0.1 port with a config it writes
-- (plain, TLS with certificates made on the spot with openssl, or with
-- username/password), waits until it accepts connections, and stops it;
-- spawns sts-lua processes and watches their output. Used by sts-lua's own
-- specs, and meant for users' specs too:
--
--   local test = require "sts.test"
--   local broker = test.broker()             -- or test.broker{ tls = true, users = { alice = "pw" } }
--   local c = assert(sts.connect{ port = broker.port })
--   ...
--   broker:stop()
local sts = require "sts"
local keyfiles = require "sts.keyfiles"

local test = {}

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
test.quote = sh_quote

local function run(cmd)
  local ok, how, code = os.execute(cmd)
  if not ok then
    error(string.format("command failed (%s %s): %s", tostring(how), tostring(code), cmd), 2)
  end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end
test.read_file = read_file

local function write_file(path, data, mode)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  if mode then run("chmod " .. mode .. " " .. sh_quote(path)) end
end
test.write_file = write_file

--- A fresh temporary directory, removed by test.cleanup().
local made_dirs = {}
--- A file's permission bits in octal, as a string ("600").
function test.file_mode(path)
  local p = io.popen("stat -c %a " .. test.quote(path))
  local m = p:read("l")
  p:close()
  return m
end

function test.tmpdir()
  local p = io.popen("mktemp -d -t sts-test.XXXXXX")
  local dir = p:read("l")
  p:close()
  made_dirs[#made_dirs + 1] = dir
  return dir
end

--- An identity in one call: a new key pair written as dir/NAME.key (mode
-- 0600) and dir/NAME.pub. Returns { name, key = path, pub = path, hex = the
-- public key in hex, fingerprint }.
function test.identity(dir, name)
  local id = { name = name, key = dir .. "/" .. name .. ".key", pub = dir .. "/" .. name .. ".pub" }
  id.fingerprint = assert(keyfiles.write_pair(dir .. "/" .. name))
  id.hex = read_file(id.pub):match("\n(%x+)")
  return id
end

--- A trust file at path accepting each of ids under its name; an entry may
-- be { id, "topic/filter" } to bind that key to the filter's topics.
-- Returns path.
function test.trust_file(path, ids)
  local lines = {}
  for _, entry in ipairs(ids) do
    local id, binding = entry[1] or entry, entry[2]
    lines[#lines + 1] = id.hex .. " " .. id.name .. (binding and " " .. binding or "")
  end
  write_file(path, table.concat(lines, "\n") .. "\n")
  return path
end

--- Polls `check` (a function) every `step` seconds, running the sts loop in
-- between, until it returns a true value or `timeout` seconds pass.
function test.wait_until(check, timeout, step)
  local deadline = sts.now() + (timeout or 5)
  repeat
    local value = check()
    if value then return value end
    sts.sleep(step or 0.02)
  until sts.now() > deadline
  return check()
end

--- Publishes `payload` on `topic` from `client` at QoS 0 until `received()`
-- is true, so that a subscription is known to be in place at the broker
-- before messages that count are sent. Errors after `timeout` (10) seconds.
function test.until_subscribed(client, topic, payload, received, timeout)
  assert(test.wait_until(function()
    assert(client:publish(topic, payload))
    return received()
  end, timeout or 10, 0.05), "the subscription to '" .. topic .. "' never took effect")
end

--- Counts numbered messages ("<n>" or "<n>:<text>") as a receiver takes
-- them (t.add(payload), or t.handler(topic, payload) as an MQTT handler):
-- `count` distinct, `dups` repeated, `forged` not as sent (when `expected(n)`
-- is given and gives another text than it came with), `probed` once a
-- message 0 (a test.until_subscribed probe, not counted) came.
-- t:lost(total): how many of 1..total never came. t:all_once(total [, timeout]):
-- waits until all came, then a second for late duplicates; true, or nil and
-- what went wrong.
function test.tally(expected)
  local t = { seen = {}, count = 0, dups = 0, forged = 0 }
  function t.add(payload)
    local n, text = payload:match("^(%d+):?(.*)$")
    n = tonumber(n)
    if n == 0 then
      t.probed = true
    elseif not n or (expected and text ~= expected(n)) then
      t.forged = t.forged + 1
    elseif t.seen[n] then
      t.dups = t.dups + 1
    else
      t.seen[n] = true
      t.count = t.count + 1
    end
  end
  function t.handler(_, payload) t.add(payload) end
  function t:lost(total)
    local lost = 0
    for n = 1, total do if not self.seen[n] then lost = lost + 1 end end
    return lost
  end
  function t:all_once(total, timeout)
    test.wait_until(function() return self.count >= total end, timeout or 30)
    sts.sleep(1)
    local lost = self:lost(total)
    if lost == 0 and self.dups == 0 and self.forged == 0 then return true end
    return nil, string.format("of %d: %d lost, %d duplicated, %d forged", total, lost, self.dups, self.forged)
  end
  return t
end

-- --- processes -------------------------------------------------------------

local Process = {}
Process.__index = Process

--- Starts a command line in its own process group, stdout and stderr to a
-- file; returns a process with :output(), :wait_for(pattern), :alive(),
-- :kill(), :wait() and :exit_code().
function test.spawn(cmd, dir)
  dir = dir or test.tmpdir()
  local n = #made_dirs
  local out = string.format("%s/proc-%d-%d.out", dir, n, math.random(1 << 30))
  local status = out .. ".status"
  local pidfile = out .. ".pid"
  run(string.format("setsid sh -c %s </dev/null >%s 2>&1 & echo $! >%s",
    sh_quote(cmd .. "; echo $? >" .. sh_quote(status)), sh_quote(out), sh_quote(pidfile)))
  local pid = tonumber(read_file(pidfile))
  return setmetatable({ pid = pid, out = out, status = status, cmd = cmd }, Process)
end

--- The path of this sts-lua executable, for spawning peers.
function test.sts_lua()
  return os.getenv("STS_LUA") or (arg and arg[-1]) or "sts-lua"
end

--- Spawns `sts-lua script args...`.
function test.spawn_script(script, ...)
  local parts = { sh_quote(test.sts_lua()), sh_quote(script) }
  for _, a in ipairs({ ... }) do parts[#parts + 1] = sh_quote(a) end
  return test.spawn(table.concat(parts, " "))
end

--- Like test.spawn, but the command's stdin is a pipe this process writes to
-- over time: proc:send(line) writes a line, proc:close_input() is EOF. For
-- driving interactive programs (the sts-lua shell) the way a user would.
function test.spawn_fed(cmd, dir)
  dir = dir or test.tmpdir()
  local fifo = string.format("%s/stdin-%d", dir, math.random(1 << 30))
  run("mkfifo " .. sh_quote(fifo))
  -- A keeper process holds the pipe open for writing: the command sees EOF
  -- when it ends, not when a send closes its end. This process keeps no
  -- descriptor on the pipe, which every later spawn would inherit.
  local ready = fifo .. ".ready"
  local keeper = test.spawn(string.format("exec 3<>%s; : >%s; exec sleep 1000000",
    sh_quote(fifo), sh_quote(ready)), dir)
  assert(test.wait_until(function() return read_file(ready) end), "the stdin keeper did not start")
  -- Once the command has the pipe open, ending the keeper is an EOF it sees.
  local opened = fifo .. ".opened"
  local proc = test.spawn(string.format("exec <%s; : >%s; %s", sh_quote(fifo), sh_quote(opened), cmd), dir)
  assert(test.wait_until(function() return read_file(opened) end), "the command did not open its stdin")
  proc.fifo, proc.keeper = fifo, keeper
  return proc
end

--- Writes data as it is (keys typed so far); :send(line) adds the newline.
function Process:write(data)
  assert(self.fifo, "not spawned with test.spawn_fed")
  -- Read-write, so the open never waits for a reader and a write after the
  -- command ended cannot raise SIGPIPE here.
  local f = assert(io.open(self.fifo, "r+"))
  f:write(data)
  f:close()
end

function Process:send(line)
  self:write(line .. "\n")
end

function Process:close_input()
  if self.keeper then self.keeper:kill() end
  self.keeper = nil
end

function Process:output()
  return read_file(self.out) or ""
end

function Process:exit_code()
  local s = read_file(self.status)
  return s and tonumber(s)
end

--- True while the process runs (a zombie counts as ended).
function Process:alive()
  if self:exit_code() then return false end
  local stat = read_file("/proc/" .. self.pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

--- Waits until the output matches `pattern` (a Lua pattern); returns the
-- capture or match, or nil after `timeout` seconds.
function Process:wait_for(pattern, timeout)
  return test.wait_until(function() return self:output():match(pattern) end, timeout or 10)
end

--- As wait_for, but a timeout is an error that shows the output so far.
function Process:expect(pattern, timeout)
  local found = self:wait_for(pattern, timeout)
  if not found then error("no '" .. pattern .. "' in:\n" .. self:output(), 2) end
  return found
end

--- Closes the input and asserts that the process then exits with status 0.
function Process:finish(timeout)
  self:close_input()
  local code = self:wait(timeout or 10)
  if code ~= 0 then error("exit " .. tostring(code) .. ", output:\n" .. self:output(), 2) end
end

--- Waits for the process to end; returns its exit code (true if unknown,
-- as for an exec'd command) or nil on timeout.
function Process:wait(timeout)
  return test.wait_until(function() return not self:alive() and (self:exit_code() or true) end, timeout or 10)
end

--- Signals the whole process group (default TERM), then KILL if it lingers.
function Process:kill(signal)
  self:close_input()
  if self:alive() then
    os.execute(string.format("kill -%s -%d 2>/dev/null", signal or "TERM", self.pid))
    if not self:wait(5) then os.execute(string.format("kill -KILL -%d 2>/dev/null", self.pid)) end
  end
end

-- --- certificates -------------------------------------------------------------

--- Makes a CA and a server certificate for 127.0.0.1/localhost in `dir`,
-- signed by it; returns { cafile, certfile, keyfile }. `name` prefixes the
-- files, so one directory can hold several CAs.
function test.make_certificates(dir, name)
  name = name or "ca"
  local p = function(suffix) return string.format("%s/%s-%s", dir, name, suffix) end
  local quiet = " >/dev/null 2>&1"
  local ext = p("ext.cnf")
  write_file(ext, "subjectAltName = IP:127.0.0.1, DNS:localhost\n")
  run(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
    .. "-keyout %s -out %s -days 2 -subj /CN=%s-test-ca" .. quiet, p("ca.key"), p("ca.crt"), name))
  run(string.format("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
    .. "-keyout %s -out %s -subj /CN=localhost" .. quiet, p("server.key"), p("server.csr")))
  run(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2 -extfile %s" .. quiet,
    p("server.csr"), p("ca.crt"), p("ca.key"), p("server.crt"), ext))
  return { cafile = p("ca.crt"), certfile = p("server.crt"), keyfile = p("server.key") }
end

-- --- brokers ---------------------------------------------------------------------

local Broker = {}
Broker.__index = Broker

local function current_user()
  local p = io.popen("id -un")
  local name = p:read("l")
  p:close()
  return name
end

local function broker_config(b)
  local lines = {
    -- Run as whoever runs the tests: as root, mosquitto would otherwise drop
    -- to a user that cannot read the files made here.
    "user " .. current_user(),
    "listener " .. b.port .. " 127.0.0.1",
    "allow_anonymous " .. (b.users and "false" or "true"),
    "persistence true",
    "persistence_location " .. b.dir .. "/",
    "autosave_interval 1",
    "log_type error", "log_type warning", "log_type notice", "log_type information",
    "max_queued_messages 100000",
    "max_inflight_messages 0",
  }
  if b.users then lines[#lines + 1] = "password_file " .. b.dir .. "/passwd" end
  if b.tls then
    lines[#lines + 1] = "cafile " .. b.tls.cafile
    lines[#lines + 1] = "certfile " .. b.tls.certfile
    lines[#lines + 1] = "keyfile " .. b.tls.keyfile
  end
  if b.bridge then
    -- A bridge as a multi-broker deployment has one: the topics both ways at
    -- QoS 1 unless told, loops broken by mosquitto's bridge flag (try_private),
    -- MQTT 3.1.1 so that any mosquitto (1.x too) or cluster node can be the peer.
    lines[#lines + 1] = "connection bridge-" .. b.bridge.port
    lines[#lines + 1] = "address 127.0.0.1:" .. b.bridge.port
    lines[#lines + 1] = "bridge_protocol_version mqttv311"
    for _, topic in ipairs(b.bridge_topics or { "# both 1" }) do lines[#lines + 1] = "topic " .. topic end
    lines[#lines + 1] = "try_private true"
    lines[#lines + 1] = "cleansession true"
    lines[#lines + 1] = "restart_timeout 1"
    lines[#lines + 1] = "notifications false"
  end
  for _, extra in ipairs(b.extra or {}) do lines[#lines + 1] = extra end
  return table.concat(lines, "\n") .. "\n"
end

--- Starts a mosquitto. opts (all optional):
--   tls = true         TLS listener with a CA made for this broker (broker.ca)
--   users = {name=pw}  username/password authentication
--   config = {lines}   extra mosquitto.conf lines
--   bridge = broker    bridged to that broker (running): every topic, both ways;
--                      test.until_subscribed across it tells when it is up
--   bridge_topics = {} the bridge's "topic" lines instead ("plant/# both 1", ...)
--                      (both may be set on a broker before :restart(), for a
--                      bridge back to a broker started after it)
-- Returns a broker with host, port, ca (with tls), dir, :stop(), :start(),
-- :restart(), :log().
function test.broker(opts)
  opts = opts or {}
  local b = setmetatable({ host = "127.0.0.1", dir = test.tmpdir(), extra = opts.config, users = opts.users,
                          bridge = opts.bridge, bridge_topics = opts.bridge_topics }, Broker)
  if opts.tls then
    b.tls = test.make_certificates(b.dir, "broker")
    b.ca = b.tls.cafile
  end
  if opts.users then
    for user, password in pairs(opts.users) do
      run(string.format("mosquitto_passwd -b %s %s %s %s >/dev/null 2>&1",
        (next(b.users_written or {}) and "" or "-c"), sh_quote(b.dir .. "/passwd"), sh_quote(user), sh_quote(password)))
      b.users_written = b.users_written or {}
      b.users_written[user] = true
    end
    -- mosquitto refuses a password file others may read.
    run("chmod 0600 " .. sh_quote(b.dir .. "/passwd"))
  end
  for _ = 1, 20 do
    b.port = opts.port or math.random(20000, 59999)
    if b:start() then return b end
    if opts.port then break end
  end
  error("could not start mosquitto: " .. (b:log() or "no log"))
end

function Broker:log()
  return read_file(self.dir .. "/mosquitto.log")
end

--- Starts (or starts again) the broker on its port; returns true once it
-- listens, false if it could not bind.
function Broker:start()
  write_file(self.dir .. "/mosquitto.conf", broker_config(self))
  write_file(self.dir .. "/mosquitto.log", "")
  self.process = test.spawn(string.format("exec mosquitto -c %s >>%s 2>&1",
    sh_quote(self.dir .. "/mosquitto.conf"), sh_quote(self.dir .. "/mosquitto.log")), self.dir)
  local state = test.wait_until(function()
    local log = self:log() or ""
    if log:match("running") then return "up" end
    if not self.process:alive() or log:match("Error") then return "failed" end
  end, 10, 0.01)
  if state ~= "up" then
    self.process:kill()
    return false
  end
  return true
end

function Broker:stop()
  if self.process then
    self.process:kill("TERM")
    self.process = nil
  end
end

function Broker:restart(pause)
  self:stop()
  if pause then sts.sleep(pause) end
  assert(self:start(), "mosquitto did not restart: " .. (self:log() or ""))
end

--- Connect options for this broker, merged with `extra`.
function Broker:options(extra)
  local o = { host = self.host, port = self.port, timeout = 5 }
  if self.tls then o.tls = { cafile = self.ca } end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- --- an "evil broker" --------------------------------------------------------------

local Relay = {}
Relay.__index = Relay
local relays = {} -- stopped by test.cleanup(), should a spec fail before it stops one

--- Starts spec/tools/evil_relay (built as $STS_BUILD_DIR/evil_relay) in
-- front of `broker`: a TCP proxy on 127.0.0.1 that mistreats the PUBLISH
-- packets passing through as opts says (each key is the relay's option of
-- the same name, "_" for "-": delay (ms), dup, reorder, drop, flip
-- (probabilities), truncate_after, cut_after (counts), seed). Returns a
-- relay with port, :options(extra) (connect options through it), :report()
-- (what it did, once stopped) and :stop().
function test.relay(broker, opts)
  local build = os.getenv("STS_BUILD_DIR") or "."
  local parts = { sh_quote(build .. "/evil_relay"), "--broker", broker.port }
  for k, v in pairs(opts or {}) do
    parts[#parts + 1] = "--" .. k:gsub("_", "-")
    parts[#parts + 1] = tostring(v)
  end
  local r = setmetatable({ broker = broker, host = "127.0.0.1" }, Relay)
  r.process = test.spawn("exec " .. table.concat(parts, " "))
  relays[#relays + 1] = r
  r.port = tonumber(r.process:wait_for("listening (%d+)", 5))
  if not r.port then error("evil_relay did not start: " .. r.process:output()) end
  return r
end

function Relay:options(extra)
  local o = self.broker:options(extra)
  o.port = self.port
  return o
end

function Relay:stop()
  if self.process then
    self.process:kill("TERM")
    self.output = self.process:output()
  end
  self.process = nil
end

function Relay:report()
  return self.output or (self.process and self.process:output()) or ""
end

--- Stops the relays still running, and removes the temporary directories
-- made so far.
function test.cleanup()
  for _, r in ipairs(relays) do r:stop() end
  relays = {}
  for _, dir in ipairs(made_dirs) do os.execute("rm -rf " .. sh_quote(dir)) end
  made_dirs = {}
end

math.randomseed(os.time() ~ tonumber(tostring({}):match("0x(%x+)") or "0", 16))

return test
