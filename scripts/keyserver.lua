-- The group key server: members reach it through pairwise sessions (its
-- public key pinned by each), and get the keys of the groups its access list
-- gives them.
--
--   sts-lua scripts/keyserver.lua --host H --port P --identity FILE --acl FILE
--       [--state FILE] [--method static|update|slotted] [--slot SECONDS]
--       [--depth D] [--prefix TOPIC] [--rotate SECONDS] [--signed]
--
--   sts-lua scripts/keyserver.lua --format smqtt [--method static|update|slotted]
--       [--slot SECONDS] [--depth D] (--psk-file FILE | --psk HEX) [--host H] [--port P]
--
-- With --format smqtt it speaks the Java SMQTT reference's wire format
-- (docs/SMQTT.md; insecure by design): --psk-file gives every member its own
-- key ("<member id> <32 hex digits>" per line), --psk one key for all (the
-- reference's way).
--
-- Prints "keyserver ready" on stdout once it serves; logs go to stderr.
-- SIGHUP re-reads the access list; SIGUSR1 rotates every group's key;
-- SIGTERM and SIGINT save the state and exit 0.
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/keyserver.lua --identity FILE --acl FILE [--host H] [--port P] [--state FILE] "
    .. "[--method static|update|slotted] [--slot SECONDS] [--depth D] [--prefix TOPIC] [--rotate SECONDS] [--signed]\n"
    .. "       sts-lua scripts/keyserver.lua --format smqtt [--method static|update|slotted] [--slot SECONDS] "
    .. "[--depth D] (--psk-file FILE | --psk HEX) [--host H] [--port P]",
  positional = 0,
  options = {
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
    identity = { "--identity" },
    acl = { "--acl" },
    state = { "--state" },
    method = { "--method", default = "static" },
    slot = { "--slot", number = true },
    depth = { "--depth", number = true },
    prefix = { "--prefix" },
    rotate = { "--rotate", number = true },
    signed = { "--signed", flag = true },
    format = { "--format", default = "native" },
    psk = { "--psk" },
    psk_file = { "--psk-file" },
  },
})

local function fail(text)
  io.stderr:write("keyserver: ", text, "\n")
  os.exit(1)
end

local smqtt = opts.format == "smqtt"
local settings
if smqtt then
  -- The reference's key server is the client "server", on MQTT 3.1.1 with clean sessions.
  settings = { format = "smqtt", method = opts.method, slot = opts.slot, depth = opts.depth,
               psk = opts.psk, psk_file = opts.psk_file }
else
  if not opts.identity or not opts.acl then fail("--identity and --acl are required") end
  settings = { identity = opts.identity, acl = opts.acl, state = opts.state, prefix = opts.prefix,
               method = opts.method, slot = opts.slot, depth = opts.depth, signed = opts.signed or nil,
               format = opts.format }
end
local client, err = sts.connect { host = opts.host, port = opts.port,
                                  client_id = smqtt and "server" or "sts-keyserver" }
if not client then fail(err) end

local ok, server, serr = pcall(sts.group.serve, client, settings)
if not ok then fail(server) end -- a bad option value
if not server then fail(serr) end

-- Saves the state, then hands over to the clean shutdown: it tells systemd
-- STOPPING=1, flushes what the client queued and disconnects (no will).
local function stop(signal)
  sts.log.info("keyserver: " .. signal .. ": saving and stopping")
  local saved, serr = server:close()
  if not saved then sts.log.error("keyserver: " .. serr) end
  sts.shutdown()
end

sts.signal("TERM", stop)
sts.signal("INT", stop)
sts.signal("HUP", function()
  local reloaded, aerr = server:reload()
  if reloaded then sts.log.info("keyserver: access list re-read")
  else sts.log.error("keyserver: keeping the old access list: " .. aerr) end
end)
if opts.rotate then
  sts.every(opts.rotate, function() server:rotate_all() end)
end
sts.signal("USR1", function() server:rotate_all() end)

io.stdout:write("keyserver ready\n")
io.stdout:flush()
sts.run()
