-- A group member on the terminal: joins GROUP through the key server, sends
-- each line of stdin to the group and prints what the others send.
--
--   sts-lua scripts/group_chat.lua --group NAME --identity FILE --keyserver FILE
--       [--host H] [--port P] [--prefix TOPIC]
--
--   sts-lua scripts/group_chat.lua --format smqtt --method static|update|slotted
--       --group TOPIC --member ID --psk HEX [--expires S] [--host H] [--port P]
--
-- With --format smqtt it is a member of a Java SMQTT reference group
-- (docs/SMQTT.md; insecure by design). Its frames name no sender, so what it
-- receives prints as "<topic>: <text>".
--
-- Prints "joined NAME" once it holds the group's key, "<sender>: <text>" for
-- each message received, "removed" when the key server removes it; leaves and
-- exits 0 at the end of stdin.
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/group_chat.lua --group NAME --identity FILE --keyserver FILE "
    .. "[--host H] [--port P] [--prefix TOPIC]\n"
    .. "       sts-lua scripts/group_chat.lua --format smqtt --method static|update|slotted --group TOPIC "
    .. "--member ID --psk HEX [--expires S] [--host H] [--port P]",
  positional = 0,
  options = {
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
    group = { "--group" },
    identity = { "--identity" },
    keyserver = { "--keyserver" },
    prefix = { "--prefix" },
    format = { "--format", default = "native" },
    method = { "--method" },
    member = { "--member" },
    psk = { "--psk" },
    expires = { "--expires", number = true },
  },
})

local function fail(text)
  io.stderr:write("group_chat: ", text, "\n")
  os.exit(1)
end

local smqtt = opts.format == "smqtt"
if not opts.group then fail("--group is required") end
if not smqtt and (not opts.identity or not opts.keyserver) then fail("--identity and --keyserver are required") end
local client_id = smqtt and opts.member or
  "sts-chat-" .. sts.hex(sts.random(6))
local client, err = sts.connect { host = opts.host, port = opts.port, client_id = client_id,
                                  will = not smqtt and sts.group.will(client_id, opts.prefix) or nil }
if not client then fail(err) end

local ok, g, jerr
if smqtt then
  ok, g, jerr = pcall(sts.group.join, client, { format = "smqtt", method = opts.method, group = opts.group,
                                               member = opts.member, psk = opts.psk, expires = opts.expires })
else
  ok, g, jerr = pcall(sts.group.join, client, { group = opts.group, identity = opts.identity,
                                               keyserver = opts.keyserver, prefix = opts.prefix })
end
if not ok then fail(g) end -- a bad option value
if not g then fail(jerr) end

local function say(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

say("joined " .. opts.group)
g:on("message", function(text, info) say((info.sender or info.topic) .. ": " .. text) end)
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
