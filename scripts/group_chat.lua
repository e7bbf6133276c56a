-- A group member on the terminal: joins GROUP through the key server, sends
-- each line of stdin to the group and prints what the others send.
--
--   sts-lua scripts/group_chat.lua --group NAME --identity FILE --keyserver FILE
--       [--host H] [--port P] [--prefix TOPIC]
--
-- Prints "joined NAME" once it holds the group's key, "<sender>: <text>" for
-- each message received, "removed" when the key server removes it; leaves and
-- exits 0 at the end of stdin.
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/group_chat.lua --group NAME --identity FILE --keyserver FILE "
    .. "[--host H] [--port P] [--prefix TOPIC]",
  positional = 0,
  options = {
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
    group = { "--group" },
    identity = { "--identity" },
    keyserver = { "--keyserver" },
    prefix = { "--prefix" },
  },
})

local function fail(text)
  io.stderr:write("group_chat: ", text, "\n")
  os.exit(1)
end

if not opts.group or not opts.identity or not opts.keyserver then
  fail("--group, --identity and --keyserver are required")
end
local client_id = "sts-chat-" .. sts.random(6):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
local client, err = sts.connect { host = opts.host, port = opts.port, client_id = client_id,
                                  will = sts.group.will(client_id, opts.prefix) }
if not client then fail(err) end

local g, jerr = sts.group.join(client, { group = opts.group, identity = opts.identity,
                                         keyserver = opts.keyserver, prefix = opts.prefix })
if not g then fail(jerr) end

local function say(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

say("joined " .. opts.group)
g:on("message", function(text, info) say(info.sender .. ": " .. text) end)
g:on("removed", function() say("removed") end)

sts.stdin(function(line)
  if line == nil then -- end of input: leave, and exit once that is sent
    sts.stdin(nil)
    sts.task(function()
      g:leave()
      client:flush(5)
      client:close()
      sts.stop()
    end)
    return
  end
  local ok, serr = g:send(line)
  if not ok then io.stderr:write("group_chat: ", serr, "\n") end
end)
sts.run()
