-- The university lab client: sends MESSAGE to a responder for ACTION,
-- encrypted under a key agreed by Diffie-Hellman, and prints the answer.
--
--   sts-lua scripts/secure_mqtt_client.lua NETID ACTION MESSAGE
--       [--host H] [-p PORT] [--dhparam FILE] [-v] [--timeout S]
--
-- ACTION: uppercase, lowercase, title-case, reverse or shuffle. Only the
-- response goes to stdout; errors (and with -v, progress) go to stderr.
-- Exit status (docs/LAB.md):
--   0 success            4 timeout: no answer from a responder
--   2 bad command line   5 key exchange failed or the response does not decrypt
--   3 broker unreachable 6 DH parameter file missing or invalid
local sts = require "sts"
local cli = require "sts.cli"
local lab = require "sts.lab"

local EXIT = { usage = 2, broker = 3, timeout = 4, key = 5, token = 5, params = 6 }
local usage = "sts-lua scripts/secure_mqtt_client.lua NETID ACTION MESSAGE "
  .. "[--host H] [-p PORT] [--dhparam FILE] [-v] [--timeout S]\n"
  .. "  ACTION: " .. table.concat(lab.action_names, ", ")

local opts, args = cli.parse(arg, {
  usage = usage,
  positional = 3,
  options = {
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = lab.DEFAULT_PORT },
    dhparam = { "--dhparam" },
    verbose = { "-v", "--verbose", flag = true },
    timeout = { "--timeout", number = true, default = 10 },
  },
})
local netid, action, message = args[1], args[2], args[3]
local started = sts.now()

local function fail(kind, text)
  io.stderr:write("secure_mqtt_client: ", text, "\n")
  os.exit(EXIT[kind])
end

local function progress(what)
  sts.log.debug(string.format("%s (%.1f ms)", what, (sts.now() - started) * 1000))
end

sts.log.level = opts.verbose and "debug" or "error"
if not lab.valid_netid(netid) then fail("usage", "NETID must be one topic level: no '/', '+' or '#'") end
if not lab.actions[action] then
  fail("usage", "unknown action '" .. action .. "' (" .. table.concat(lab.action_names, ", ") .. ")")
end
if opts.timeout <= 0 then fail("usage", "--timeout must be positive") end
if opts.port < 1 or opts.port > 65535 or opts.port % 1 ~= 0 then fail("usage", "-p needs a port from 1 to 65535") end

local params, err = lab.load_params(opts.dhparam or lab.DEFAULT_DHPARAM)
if not params then
  if not opts.dhparam and not lab.file_exists(lab.DEFAULT_DHPARAM) then
    err = "no DH parameters: ./" .. lab.DEFAULT_DHPARAM .. " is missing and --dhparam was not given"
  end
  fail("params", err)
end

-- The key pair takes a third of a request's time: the broker connection
-- starts first, in a task (the host name is looked up meanwhile).
local connecting = sts.future()
sts.task(function()
  connecting:set(sts.connect{ host = opts.host, port = opts.port, timeout = opts.timeout, reconnect = false })
end)
local key = params:keypair()
progress("key pair made")
local client, cerr = connecting:wait(opts.timeout + 1)
if not client then fail("broker", string.format("cannot reach the broker at %s:%d: %s", opts.host, opts.port, cerr)) end
progress("connected")

local text, rerr, kind = lab.request(client, {
  netid = netid, action = action, message = message, key = key,
  timeout = opts.timeout - (sts.now() - started),
})
key:close()
if not text then
  client:disconnect()
  fail(kind, rerr)
end
io.stdout:write(text, "\n")
io.stdout:flush()
progress("done")
client:flush(1)
client:disconnect()
os.exit(0)
