-- The group key server: members reach it through pairwise sessions (its
-- public key pinned by each), and get the keys of the groups its access list
-- gives them.
--
--   sts-lua scripts/keyserver.lua --host H --port P --identity FILE --acl FILE
--       [--state FILE] [--method static|update|slotted] [--slot SECONDS]
--       [--depth D] [--prefix TOPIC] [--rotate SECONDS] [--signed]
--
-- Prints "keyserver ready" on stdout once it serves; logs go to stderr.
-- SIGHUP re-reads the access list; SIGUSR1 rotates every group's key;
-- SIGTERM and SIGINT save the state and exit 0.
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/keyserver.lua --identity FILE --acl FILE [--host H] [--port P] [--state FILE] "
    .. "[--method static|update|slotted] [--slot SECONDS] [--depth D] [--prefix TOPIC] [--rotate SECONDS] [--signed]",
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
  },
})

local function fail(text)
  io.stderr:write("keyserver: ", text, "\n")
  os.exit(1)
end

if not opts.identity or not opts.acl then fail("--identity and --acl are required") end
local client, err = sts.connect { host = opts.host, port = opts.port, client_id = "sts-keyserver" }
if not client then fail(err) end

local ok, server, serr = pcall(sts.group.serve, client, {
  identity = opts.identity, acl = opts.acl, state = opts.state, prefix = opts.prefix,
  method = opts.method, slot = opts.slot, depth = opts.depth, signed = opts.signed or nil,
})
if not ok then fail(server) end -- a bad option value
if not server then fail(serr) end

local function stop(signal)
  sts.log.info("keyserver: " .. signal .. ": saving and stopping")
  local saved, serr = server:close()
  if not saved then sts.log.error("keyserver: " .. serr) end
  client:close()
  sts.stop()
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
