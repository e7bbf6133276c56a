-- One end of a native STS session in its own sts-lua process, for the specs
-- (spec/session_spec.lua). Its command line sets up the session; messages it
-- receives are commands:
--   "stats"   -> answers "stats k=v ..." (session:stats(), rejected as rejected.REASON=n)
--   "close"   -> closes the session (sends KILL) and exits
--   "rehandshake" -> starts a new handshake (initiator)
--   "boom"    -> raises an error in the message handler (the host must survive)
--   anything else but an echo -> answers "echo:" .. message
-- and it prints, one line each: "established FINGERPRINT|none AUTHENTICATED",
-- "failed: WHY", "message PAYLOAD" (with --print), "closed REASON", "sent N".
--
--   sts-lua spec/peers/session_peer.lua -p PORT --role initiator|responder --pub T --sub T
--     [--identity KEY] [--peer PUB | --trust FILE] [--pattern XX|IK|NN] [--timeout S]
--     [--retransmit S] [--rekey N] [--qos Q] [--client-id ID --persistent]
--     [--send N [--batch B] [--text PREFIX]] [--print]
-- With --send it sends "PREFIX 1" ... "PREFIX N" once established.
local sts = require "sts"
local cli = require "sts.cli"

io.stdout:setvbuf("line")

local opts = cli.parse(arg, {
  usage = "sts-lua spec/peers/session_peer.lua -p PORT --role R --pub T --sub T [options]",
  options = {
    port = { "-p", "--port", number = true },
    role = { "--role" },
    pub = { "--pub" },
    sub = { "--sub" },
    identity = { "--identity" },
    peer = { "--peer" },
    trust = { "--trust" },
    pattern = { "--pattern" },
    timeout = { "--timeout", number = true, default = 2 },
    retransmit = { "--retransmit", number = true, default = 0.2 },
    rekey = { "--rekey", number = true },
    qos = { "--qos", number = true, default = 1 },
    client_id = { "--client-id" },
    persistent = { "--persistent", flag = true },
    send = { "--send", number = true, default = 0 },
    batch = { "--batch", number = true, default = 100 },
    text = { "--text", default = "seq" },
    print = { "--print", flag = true },
  },
})

local client = assert(sts.connect{
  host = "127.0.0.1", port = opts.port, client_id = opts.client_id,
  clean_session = not opts.persistent, reconnect = { min_delay = 0.1, max_delay = 0.5 },
})

local session, err = sts.handshake(client, {
  role = opts.role, pub = opts.pub, sub = opts.sub, identity = opts.identity,
  peer = opts.peer, trust = opts.trust, pattern = opts.pattern, timeout = opts.timeout,
  retransmit = opts.retransmit, qos = opts.qos,
  rekey = opts.rekey and { messages = opts.rekey } or nil,
})
if not session then
  print("failed: " .. tostring(err))
  os.exit(1)
end
print(string.format("established %s %s", session.peer or "none", tostring(session.authenticated)))

local function stats_line()
  local parts = {}
  for k, v in pairs(session:stats()) do
    if type(v) == "table" then
      for reason, n in pairs(v) do parts[#parts + 1] = string.format("%s.%s=%d", k, reason, n) end
    else
      parts[#parts + 1] = string.format("%s=%d", k, v)
    end
  end
  table.sort(parts)
  return "stats " .. table.concat(parts, " ")
end

session:on("message", function(payload)
  if opts.print then print("message " .. payload) end
  if payload == "stats" then
    session:send(stats_line())
  elseif payload == "close" then
    session:close("asked to close")
  elseif payload == "rehandshake" then
    assert(session:rehandshake())
  elseif payload == "boom" then
    error("boom on purpose")
  elseif not payload:match("^echo:") then
    session:send("echo:" .. payload)
  end
end)

session:on("close", function(reason)
  print("closed " .. tostring(reason))
  sts.task(function()
    client:flush(2)
    sts.stop()
  end)
end)

if opts.send > 0 then
  sts.task(function()
    for i = 1, opts.send do
      assert(session:send(opts.text .. " " .. i))
      if i % opts.batch == 0 then sts.sleep(0.005) end
    end
    client:flush(30)
    print("sent " .. opts.send)
  end)
end

sts.run()
