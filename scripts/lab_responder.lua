-- The university lab responder: answers secure_mqtt_client for any netid
-- (docs/LAB.md). Runs until stopped; bad requests are logged and skipped.
--
--   sts-lua scripts/lab_responder.lua [--host H] [-p PORT] [--dhparam FILE] [-v]
--
-- --dhparam (default ./dhparam4096.pem) names the group the requesters use:
-- key pairs in it are made ahead of time, which halves the responder's part
-- of a request. A requester in another group is still answered, in its own
-- group. Without --dhparam and without ./dhparam4096.pem every key pair is
-- made on demand. Exit status: 2 bad command line, 3 broker unreachable,
-- 6 the --dhparam file is missing or invalid.
local sts = require "sts"
local cli = require "sts.cli"
local lab = require "sts.lab"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/lab_responder.lua [--host H] [-p PORT] [--dhparam FILE] [-v]",
  positional = 0,
  options = {
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = lab.DEFAULT_PORT },
    dhparam = { "--dhparam" },
    verbose = { "-v", "--verbose", flag = true },
  },
})
if opts.verbose then sts.log.level = "debug" end

local function fail(status, text)
  io.stderr:write("lab_responder: ", text, "\n")
  os.exit(status)
end

if opts.port < 1 or opts.port > 65535 or opts.port % 1 ~= 0 then fail(2, "-p needs a port from 1 to 65535") end

local params, err = lab.load_params(opts.dhparam or lab.DEFAULT_DHPARAM)
if not params then
  if opts.dhparam or lab.file_exists(lab.DEFAULT_DHPARAM) then fail(6, err) end
  sts.log.info("lab responder: no ./" .. lab.DEFAULT_DHPARAM .. ", key pairs are made on demand")
end

local client, cerr = sts.connect{ host = opts.host, port = opts.port }
if not client then fail(3, string.format("cannot reach the broker at %s:%d: %s", opts.host, opts.port, cerr)) end
client:on("disconnect", function(reason) sts.log.warn("lab responder: broker connection lost: " .. reason) end)
client:on("connect", function() sts.log.info("lab responder: reconnected") end)

lab.serve(client, { params = params })
client:flush(5) -- the subscriptions are on their way before we say we serve
sts.log.info(string.format("lab responder: serving on %s:%d%s", opts.host, opts.port,
  params and string.format(" (%d-bit group)", params:bits()) or ""))
sts.run()
