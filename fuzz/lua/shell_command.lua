--- The shell's command line (lua/sts/shell.lua): command lines run through
-- the shell's own Shell:execute, and messages arriving for the session a
-- `start` made.
--
-- Input: a config file, a NUL, then lines. "$CONFIG" in a line stands for
-- the config file's path; a line starting with "<" is a message arriving
-- on every topic the session subscribed to (the rest of the line is the
-- payload, "\n" in it a newline); any other line is a command. At the end
-- the session, if any, is stopped.
--
-- The shell runs unchanged; what leaves the process is replaced: the MQTT
-- client is a table that records what is published, sts.handshake,
-- sts.group.join and sts.sealer refuse (they need peers), keygen writes no
-- files and `run` loads no scripts. Checked: every command ends or fails
-- with an error raised on purpose (a runtime error is a bug), and what the
-- shell prints of a message from the network holds no control character
-- but tab.
local sts = require "sts"
local keyfiles = require "sts.keyfiles"
local shell = require "sts.shell"
local fuzzing = require "fuzzing"

local function upvalue(fn, name)
  for i = 1, math.huge do
    local n, v = debug.getupvalue(fn, i)
    if n == nil then error("no upvalue " .. name, 0) end
    if n == name then return v, i end
  end
end

local Shell = upvalue(shell.main, "Shell")
local commands = upvalue(Shell.execute, "commands")
-- sendenc waits for a handshake in progress; here none ever completes.
local _, wait = upvalue(commands.sendenc, "HANDSHAKE_WAIT")
debug.setupvalue(commands.sendenc, wait, 0)

local printed = {}
sts.print_async = function(text) printed[#printed + 1] = text end
keyfiles.write_pair = function() return nil, "fuzz: no key files are written" end
loadfile = function() return nil, "fuzz: no scripts are run" end
sts.handshake = function() error("fuzz: no peer", 0) end
sts.sealer = function() return nil, "fuzz: no state files are written" end
if sts.group then sts.group.join = function() return nil, "fuzz: no key server" end end

-- The client: subscriptions kept, publications counted.
local Client = {}
Client.__index = Client
function Client:publish(topic, payload)
  fuzzing.check(type(topic) == "string" and type(payload) == "string", "publish(%s, %s)", topic, payload)
  self.published = self.published + 1
  return true
end
function Client:subscribe(filter, handler)
  self.handlers[filter] = handler
  return true
end
function Client:unsubscribe(filter) self.handlers[filter] = nil end
function Client:on() end
function Client:id() return "fuzz" end
function Client:connected() return true end
function Client:disconnect() self.closed = true end
function Client:flush() return true end

local client
sts.connect = function()
  client = setmetatable({ handlers = {}, published = 0 }, Client)
  return client
end

local verbose = os.getenv("STS_FUZZ_VERBOSE") -- shows what the shell printed

local function check_printed()
  for _, text in ipairs(printed) do
    if verbose then io.stderr:write(text, "\n") end
    if text:find("^%[MQTT_INC") then
      fuzzing.check(not text:find("[%z\1-\8\10-\31\127]"), "control character shown: %q", text)
    end
  end
  printed = {}
end

local function arrive(payload)
  if not client or client.closed then return end
  payload = payload:gsub("\\n", "\n")
  local filters = {}
  for filter in pairs(client.handlers) do filters[#filters + 1] = filter end
  table.sort(filters)
  for _, filter in ipairs(filters) do
    local handler = client.handlers[filter]
    if handler then fuzzing.try("message on " .. filter, handler, filter, payload) end
  end
end

return function(input)
  local config, lines = input:match("^(.-)%z(.*)$")
  if not config then config, lines = "", input end
  local path = fuzz_file(config)
  local sh = setmetatable({ queue = {} }, Shell)
  client = nil
  local n = 0
  for line in lines:gmatch("[^\n]+") do
    n = n + 1
    if n > 64 then break end
    if line:sub(1, 1) == "<" then
      arrive(line:sub(2))
    else
      -- execute catches what a command raises and returns it (after printing it).
      local ok, done, err = pcall(sh.execute, sh, (line:gsub("%$CONFIG", path)))
      fuzzing.check(ok, "execute raised %s", tostring(done))
      fuzzing.check(done or fuzzing.expected(err), "%q failed with a bug: %s", line, tostring(err))
    end
    check_printed()
  end
  if sh.session then fuzzing.try("stop", sh.session.stop, sh.session) end
  check_printed()
end
