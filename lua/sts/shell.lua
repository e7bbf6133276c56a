--- The Secure Telemetry Shell: `sts-lua` with no script, or `sts-lua --shell`.
--
-- Commands come from stdin, a line each: on a terminal with the "> " prompt,
-- line editing and history, from a pipe plainly. Everything runs on the
-- event loop, so incoming messages print while the user types. Commands run
-- one after another, in order, in one task: a piped `start` has finished
-- when the next line runs. EOF stops the session and exits.
--
-- One session at a time, of the kind its config file asks for
-- (sts.shell.config reads it):
--   nosec    sts_mode = nosec: plain text, `send`
--   legacy   sts_mode = master | slave, aes = ecb | cbc, no protocol key (or
--            protocol = legacy): the original STS wire protocol, `sendenc`
--   sts      protocol = sts: the native protocol (sts.handshake), `sendenc`
--   group    protocol = group: a member of a group (sts.group.join), `send`
--            or `sendenc` (both encrypted: a group has no clear channel)
--   sealed   protocol = sealed: one-way readings sealed to a gateway's key
--            (sts.sealer), `sendsealed`; no handshake, nothing received
-- A kind is a table of functions over the session: begin, incoming (legacy
-- and nosec frames), sendenc, stop, describe, state, and optionally
-- configure (before connecting), send, sendsealed, rejected and details
-- (status lines).
local sts = require "sts"
local Config = require "sts.shell.config"
local keyfiles = require "sts.keyfiles"

local shell = {}

local HANDSHAKE_WAIT = 10       -- seconds sendenc waits for a handshake in progress
local INITREQ_FIRST_RETRY = 0.5 -- then doubling up to INITREQ_MAX_RETRY
local INITREQ_MAX_RETRY = 8
local LEGACY_STALL = 3          -- seconds a legacy handshake past INITREQ may take before it starts over
local ORIGINAL_SLAVE_DELAY = 1  -- the original slave turns encryption on this long after KEYACK
local HOLD_MARGIN = 0.2         -- a master's first encrypted frames go this much later still
local MAX_REJECT_NOTES = 20     -- rejected frames reported one by one, then only counted

-- --- output ---------------------------------------------------------------------

local function say(fmt, ...)
  sts.print_async(select("#", ...) > 0 and fmt:format(...) or fmt)
end

--- A user's mistake: ends the command with "error: message".
local function fail(fmt, ...)
  error(select("#", ...) > 0 and fmt:format(...) or fmt, 0)
end

--- Text from the network, safe to show: control characters (an escape
-- sequence would drive the terminal) appear as \xNN.
local function printable(text)
  text = text:gsub("[%c\127]", function(c)
    return c == "\t" and c or ("\\x%02x"):format(c:byte())
  end)
  -- The C1 controls as UTF-8 (U+0080..U+009F: U+009B is a terminal's CSI).
  return (text:gsub("\194([\128-\159])", function(c) return ("\\u%04x"):format(c:byte()) end))
end

local function ms(seconds)
  return seconds * 1000
end

-- --- sessions -------------------------------------------------------------------

local Session = {}
Session.__index = Session

local kinds = {}

--- The other side, as the user knows it.
function Session:peer_role()
  return self.role == "master" and "slave" or "master"
end

--- Publishes on topic (default: the session's); a failure ends the command.
function Session:publish(payload, topic, retain)
  local ok, err = self.client:publish(topic or self.pubtop, payload, { qos = self.qos, retain = retain })
  if not ok then fail("%s", err) end
end

--- Publishes a message the user sent (counted). Only plain ones honour
-- is_retained: a retained handshake frame or ciphertext would greet every
-- later peer.
function Session:send_message(payload, topic, plain)
  self:publish(payload, topic, plain and self.retain)
  self.stats.sent = self.stats.sent + 1
end

function Session:show_incoming(text, topic)
  self.stats.received = self.stats.received + 1
  if topic then say("[MQTT_INC %s]: %s", printable(topic), printable(text))
  else say("[MQTT_INC]: %s", printable(text)) end
end

--- A frame the protocol refused: counted, and reported while that stays readable.
function Session:reject(payload, why)
  local n = self.stats.rejected + 1
  self.stats.rejected = n
  if n <= MAX_REJECT_NOTES then
    say("warning: rejected a %d-byte frame on '%s': %s", #payload, self.subtop, why)
  end
  if n == MAX_REJECT_NOTES then say("warning: further rejected frames are only counted (see status)") end
end

--- Reports the end of a handshake (as `event`, "session established" unless
-- told); sendenc waits on s.ready until then.
function Session:established(what, event)
  local now = sts.now()
  self.ready_at = now
  say("%s (%s): handshake %.1f ms, %.1f ms since start", event or "session established", what,
    ms(now - self.handshake_at), ms(now - self.started_at))
  self.ready:set(true)
end

--- Starts the session a config file describes (in a task: it connects).
-- ended(s) is called when the session ends by itself (a group member the
-- key server removed), for the shell to stop it.
function Session.start(path, ended)
  local config = Config.load(path)
  local kind, role, aes = config:kind()
  local s = setmetatable({
    path = path, kind = kind, role = role, aes = aes, extra = {}, ended = ended,
    stats = { sent = 0, received = 0, rejected = 0 },
    qos = config:integer("qos", (kind == "nosec" or kind == "legacy") and 0 or 1),
    retain = config:bool("is_retained", false),
    ready = sts.future(),
  }, Session)
  s.options = config:connect_options()
  if kinds[kind].configure then kinds[kind].configure(s, config)
  else s.subtop, s.pubtop = config:topics(role) end
  if kind == "sts" then s.handshake_options, s.fingerprint = config:native_options(role) end
  s.started_at = sts.now()
  local client, err = sts.connect(s.options)
  if not client then fail("cannot connect to %s:%d: %s", s.options.host, s.options.port, err) end
  s.client = client
  client:on("disconnect", function(reason, reconnecting)
    say("connection to the broker lost: %s%s", reason, reconnecting and " (reconnecting)" or "")
  end)
  client:on("connect", function() say("connected to the broker again") end)
  say("connected to %s:%d as %s", s.options.host, s.options.port, client:id())
  local ok, berr = pcall(kinds[kind].begin, s)
  if not ok then
    client:disconnect()
    error(berr, 0)
  end
  return s
end

--- For nosec and legacy: the session's topic, handled by the kind.
function Session:subscribe()
  local ok, err = self.client:subscribe(self.subtop, function(_, payload)
    kinds[self.kind].incoming(self, payload)
  end, { qos = self.qos })
  if not ok then fail("%s", err) end
end

function Session:encrypted()
  return self.kind ~= "nosec"
end

--- Ends the session: the peer is told where the protocol can, then the
-- connection is closed.
function Session:stop()
  self.stopped = true
  kinds[self.kind].stop(self)
  self.client:flush(2) -- the goodbye (KILL) reaches the broker before we leave
  self.client:disconnect()
  say("session stopped")
end

-- nosec: plain text both ways.
kinds.nosec = {
  begin = function(s)
    s:subscribe()
    say("session started (nosec: messages travel in clear)")
  end,
  incoming = function(s, payload) s:show_incoming(payload) end,
  stop = function() end,
  describe = function() return "nosec (no encryption)" end,
  state = function(s) return s.client:connected() and "connected" or "reconnecting" end,
}

-- legacy: the original STS protocol, one sts.legacy side at a time.
local legacy = {}
kinds.legacy = legacy

local LEGACY_WARNING = "warning: the original STS protocol has neither integrity nor authentication: "
  .. "anyone who can publish on '%s' can alter or forge messages, or pose as the %s "
  .. "(protocol = sts has both)"

--- A side whose frames fit what the original receives on our topic.
local function new_side(s)
  if s.side then s.side:close() end
  s.side = sts.legacy.new{ role = s.role, mode = s.aes, pub = s.pubtop }
  s.handshake_at = nil
end

local function publish_frames(s, frames)
  for _, frame in ipairs(frames) do s:publish(frame) end
end

--- QoS 0 may lose the INITREQ, and the slave may start later: the master
-- sends it again, less and less often, until an INITACK comes back.
local function resend_initreq(s, frames, delay)
  if s.retry then s.retry:cancel() end
  s.retry = sts.after(delay, function()
    if s.stopped or s.side:state() ~= "wait_initack" then return end
    if delay == INITREQ_FIRST_RETRY then
      say("no slave has answered on '%s' yet; sending INITREQ again until one does", s.subtop)
    end
    pcall(publish_frames, s, frames) -- refused while reconnecting: the next try will do
    resend_initreq(s, frames, math.min(delay * 2, INITREQ_MAX_RETRY))
  end)
end

--- A master's handshake from the start: INITREQ, repeated until answered.
local function send_initreq(s, frames)
  s.handshake_at = sts.now()
  pcall(publish_frames, s, frames)
  resend_initreq(s, frames, INITREQ_FIRST_RETRY)
end

--- The session is gone (KILL, a new handshake): sendenc waits for the next.
local function unready(s)
  if s.ready_at then s.ready, s.ready_at = sts.future(), nil end
end

--- A handshake that stalls past INITREQ (the original slave hangs on some
-- keys; QoS 0 may lose a frame) starts over after LEGACY_STALL seconds: the
-- master with a fresh key and INITREQ, the slave waiting for one.
local function restart_handshake(s)
  local stalled = s.side:state():gsub("_", " ")
  local frames = assert(s.side:restart())
  s.handshake_at = nil
  if s.role == "master" then
    say("the handshake stalled in %s for %d s; starting over with INITREQ and a new key "
      .. "(an original slave that hung must be restarted)", stalled, LEGACY_STALL)
    send_initreq(s, frames)
  else
    say("the handshake stalled in %s for %d s; waiting for a new INITREQ on '%s'", stalled, LEGACY_STALL, s.subtop)
  end
end

--- Arms the stall timer while a handshake is past INITREQ, disarms it otherwise.
local function watch_handshake(s)
  local state = s.side:state()
  local midway = state == "wait_keyack" or state == "wait_keyreq"
  if not midway and s.stall then
    s.stall:cancel()
    s.stall = nil
  elseif midway and not s.stall then
    s.stall = sts.after(LEGACY_STALL, function()
      s.stall = nil
      local now = s.side:state()
      if not s.stopped and (now == "wait_keyack" or now == "wait_keyreq") then restart_handshake(s) end
    end)
  end
end

function legacy.begin(s)
  s:subscribe()
  say(LEGACY_WARNING, s.subtop, s:peer_role())
  new_side(s)
  if s.role == "master" then
    send_initreq(s, assert(s.side:start()))
    say("INITREQ sent on '%s'; waiting for the slave", s.pubtop)
  else
    say("waiting for the master's INITREQ on '%s'", s.subtop)
  end
end

local function send_sealed(s, text)
  local frame, why = s.side:seal(text)
  if not frame then fail("cannot send: %s", why) end
  s:send_message(frame)
end

--- Sends what sendenc held back, in order, each sealed only now: in CBC the
-- chain is the last block sent or received, so it stays in step.
local function release_held(s)
  if s.hold then s.hold:cancel() end
  local held = s.held or {}
  s.hold, s.held, s.hold_until = nil, nil, nil
  for _, text in ipairs(held) do
    local ok, err = pcall(send_sealed, s, text)
    if not ok then say("error: a held message was not sent: %s", err) end
  end
end

--- The original slave drops what comes before it turns encryption on, one
-- second after KEYACK: a master holds its encrypted messages until just
-- after (ORIGINAL_SLAVE_DELAY + HOLD_MARGIN), queued, not dropped.
local function hold_encrypted(s)
  local delay = ORIGINAL_SLAVE_DELAY + HOLD_MARGIN
  s.held, s.hold_until = {}, sts.now() + delay
  s.hold = sts.after(delay, function() release_held(s) end)
end

local function drop_held(s)
  if s.held and #s.held > 0 then say("%d held message(s) not sent: the session ended", #s.held) end
  if s.hold then s.hold:cancel() end
  s.hold, s.held, s.hold_until = nil, nil, nil
end

local function legacy_killed(s)
  say("the %s ended the session (KILL)", s:peer_role())
  drop_held(s)
  if s.role == "slave" then
    unready(s)
    new_side(s)
    say("waiting for a new INITREQ on '%s'", s.subtop)
  end
end

--- A slave: a new INITREQ from a master that restarted (or started over).
local function legacy_restarted(s)
  say("the master started a new handshake (INITREQ): the keys so far are dropped")
  unready(s)
  s.handshake_at = sts.now()
end

function legacy.incoming(s, payload)
  local r, why = s.side:receive(payload)
  if not r then return s:reject(payload, why) end
  s.handshake_at = s.handshake_at or sts.now() -- a slave's handshake starts with INITREQ
  local ok, err = pcall(publish_frames, s, r.frames)
  if not ok then say("error: could not answer the %s: %s", s:peer_role(), err) end
  if r.event == "ready" then
    if s.role == "master" then hold_encrypted(s) end -- before a waiting sendenc runs
    s:established(("original STS protocol, %s, %s"):format(s.role, s.aes:upper()))
  elseif r.event == "message" then
    s:show_incoming(r.message)
  elseif r.event == "killed" then
    legacy_killed(s)
  elseif r.event == "restarted" then
    legacy_restarted(s)
  end
  watch_handshake(s)
end

--- Refused at once if the original could not receive it; held while its
-- slave has not turned encryption on.
function legacy.sendenc(s, text)
  local ok, why = s.side:check(text)
  if not ok then fail("cannot send: %s", why) end
  if not s.held then return send_sealed(s, text) end
  s.held[#s.held + 1] = text
  if #s.held == 1 then
    say("held until the slave turns encryption on (%.1f s after KEYACK); then sent in order",
      ORIGINAL_SLAVE_DELAY + HOLD_MARGIN)
  end
end

--- The held messages and the KILL wait for the slave's encryption too.
function legacy.stop(s)
  if s.retry then s.retry:cancel() end
  if s.stall then s.stall:cancel() end
  if s.hold_until then
    sts.sleep(math.max(0, s.hold_until - sts.now()))
    release_held(s)
  end
  if s.side:state() == "established" then
    local frame = s.side:kill()
    if frame and pcall(s.publish, s, frame) then say("sent KILL to the %s", s:peer_role()) end
  end
  s.side:close()
end

function legacy.describe(s)
  return ("original STS protocol, %s, AES-256-%s"):format(s.role, s.aes:upper())
end

function legacy.state(s)
  local state = s.side:state():gsub("_", " ")
  if state == "established" then
    state = ("%s (handshake %.1f ms)"):format(state, ms(s.ready_at - s.handshake_at))
  end
  if s.held and #s.held > 0 then
    state = ("%s, %d message(s) held until the slave turns encryption on"):format(state, #s.held)
  end
  return state
end

--- The longest message the original receives on our topic.
function legacy.details(s)
  return { ("limit:    %d bytes a message (what the original receives on '%s')"):format(s.side:max_message(),
    s.pubtop) }
end

-- sts: the native protocol, through sts.handshake.
local native = {}
kinds.sts = native

--- Handshakes until one completes or the session stops (stop closes the
-- client, which ends a pending handshake). A master tries again after a
-- failure (no slave yet, say). Reasons are said once each, not at every try.
local function handshake(s)
  local said
  while not s.stopped do
    local o = {}
    for k, v in pairs(s.handshake_options) do o[k] = v end
    o.pub, o.sub = s.pubtop, s.subtop
    s.handshake_at = sts.now()
    local ok, session, err = pcall(sts.handshake, s.client, o)
    if not ok then return say("error: %s", session) end -- options it refuses: trying again is no use
    if s.stopped then
      if session then session:close() end
      return
    end
    if session then return native.established(s, session) end
    if err ~= said and err ~= "client closed" then say("no session yet: %s; trying again", err) end
    said = err
  end
end

function native.begin(s)
  if s.role == "master" then say("handshake started on '%s'", s.pubtop)
  else say("waiting for the master's handshake on '%s'", s.subtop) end
  sts.task(handshake, s)
end

function native.established(s, session)
  s.session = session
  session:on("message", function(payload) s:show_incoming(payload) end)
  session:on("close", function(reason)
    if s.stopped then return end
    s.session = nil
    say("the %s ended the session (%s)", s:peer_role(), reason)
    if s.role == "slave" then
      s.ready = sts.future()
      say("waiting for a new handshake on '%s'", s.subtop)
      sts.task(handshake, s)
    end
  end)
  s:established(("native STS protocol, %s, peer %s"):format(s.role, session.peer or "not authenticated"))
end

function native.sendenc(s, text)
  if not s.session then fail("cannot send: the session is closed") end
  local ok, err = s.session:send(text)
  if not ok then fail("cannot send: %s", err) end
  s.stats.sent = s.stats.sent + 1
end

function native.stop(s)
  if s.session then
    s.session:close()
    say("sent KILL to the %s", s:peer_role())
  end
end

function native.describe(s)
  return ("native STS protocol, %s, pattern %s"):format(s.role, s.handshake_options.pattern or "chosen by the keys")
end

--- The engine counts the frames it refuses (and logs them, sparingly).
function native.rejected(s)
  return s.stats.rejected + (s.session and s.session:stats().rejected_total or 0)
end

function native.state(s)
  if not s.session then return "handshake in progress" end
  local st = s.session:stats()
  return ("%s with %s (handshake %.1f ms, %d handshakes, %d rekeys)"):format(s.session:state(),
    s.session.peer or "an unauthenticated peer", ms(s.ready_at - s.handshake_at), st.handshakes, st.rekeys)
end

-- group: a member of a group, through sts.group.join.
local member = {}
kinds.group = member

--- The group's topic, and a client id known before connecting: the MQTT
-- will that tells the key server we died carries it.
function member.configure(s, config)
  s.join_options, s.fingerprint, s.keyserver = config:group_options()
  s.subtop = sts.group.topic(s.join_options.group, s.join_options.prefix)
  s.pubtop = s.subtop
  s.options.client_id = s.options.client_id or "sts-" .. sts.hex(sts.random(6))
  s.options.will = sts.group.will(s.options.client_id, s.join_options.prefix)
end

--- Joins (waits for the key server's answer): a refusal ends the start.
function member.begin(s)
  say("joining group '%s' through the key server %s", s.join_options.group, s.keyserver)
  s.handshake_at = sts.now()
  local g, err = sts.group.join(s.client, s.join_options)
  if not g then fail("cannot join: %s", err) end
  s.group = g
  g:on("message", function(text, info) s:show_incoming(text, info.sender) end)
  g:on("rekey", function(epoch) say("group '%s' has new keys: epoch %d", g.name, epoch) end)
  g:on("removed", function(reason)
    say("the key server removed this member from group '%s': %s", g.name, reason)
    s:ended()
  end)
  s:established(("method %s, epoch %d"):format(g.method, g.epoch), "joined group " .. g.name)
end

function member.sendenc(s, text)
  local ok, err = s.group:send(text)
  if not ok then fail("cannot send: %s", err) end
  s.stats.sent = s.stats.sent + 1
end
member.send = member.sendenc

function member.stop(s)
  local g = s.group
  if g:state() == "joined" then
    g:leave()
    say("left group '%s'", g.name)
  else
    g:close()
  end
end

function member.describe(s)
  return ("native STS group '%s', method %s%s"):format(s.group.name, s.group.method,
    s.group.signed and ", signed" or "")
end

function member.rejected(s)
  return s.stats.rejected + s.group:stats().rejected_total
end

function member.state(s)
  local g = s.group
  return ("%s as index %d, epoch %d (handshake %.1f ms, %d rekeys)"):format(g:state(), g.index, g.epoch,
    ms(s.ready_at - s.handshake_at), g:stats().rekeys)
end

--- The frames the group refused, by reason.
function member.details(s)
  local counts, reasons = s.group:stats().rejected, {}
  for reason, n in pairs(counts) do
    if n > 0 then reasons[#reasons + 1] = ("%s %d"):format(reason, n) end
  end
  table.sort(reasons)
  return { ("rejected: %s"):format(#reasons > 0 and table.concat(reasons, ", ") or "none") }
end

-- sealed: one-way readings to a gateway, through sts.sealer. The counter
-- lives in the state file, so it keeps rising across shells and restarts.
local sealed = {}
kinds.sealed = sealed

function sealed.configure(s, config)
  s.sealer_options, s.pubtop, s.fingerprint, s.gateway = config:sealed_options()
end

--- Opens the state file: a counter that cannot be kept ends the start.
function sealed.begin(s)
  local sealer, err = sts.sealer(s.sealer_options)
  if not sealer then fail("cannot seal: %s", err) end
  s.sealer = sealer
  say("ready to send sealed readings on '%s' to the gateway %s (pattern %s): use sendsealed",
    s.pubtop, s.gateway, s.sealer_options.pattern)
  s.ready:set(true)
end

function sealed.sendsealed(s, text)
  local frame, err = s.sealer:seal(text, s.pubtop)
  if not frame then fail("cannot seal: %s", err) end
  s:send_message(frame)
end

function sealed.stop(s)
  s.sealer:close()
end

function sealed.describe(s)
  return ("sealed one-way readings, pattern %s%s"):format(s.sealer_options.pattern,
    s.sealer_options.pattern == "N" and " (anonymous)" or "")
end

--- The counter is the last reading's (none before the first).
function sealed.state(s)
  return ("%s, counter %s, pattern %s, to the gateway %s"):format(
    s.client:connected() and "connected" or "reconnecting", s.sealer.counter or "none yet", s.sealer_options.pattern,
    s.gateway)
end

-- --- commands -------------------------------------------------------------------

local Shell = {}
Shell.__index = Shell

local commands, order = {}, {}

local function command(name, args, help, fn)
  commands[name] = fn
  order[#order + 1] = { name = name, args = args, help = help }
end

local function need_session(sh)
  return sh.session or fail("no session: start one with 'start CONFIG'")
end

local function need_text(text, what)
  if text == "" then fail("%s needs a message", what) end
  return text
end

command("start", "CONFIG", "connect as the config file says and start a session", function(sh, path)
  if sh.session then fail("a session is running (%s): stop it first", sh.session.path) end
  if path == "" then fail("start needs a config file, e.g. start configs/nosec") end
  -- A session that ends by itself is stopped between commands, as `stop` would.
  sh.session = Session.start(path, function(s)
    sh:feed(function()
      if sh.session ~= s then return end
      sh.session = nil
      local ok, err = pcall(s.stop, s)
      if not ok then say("error: %s", err) end
    end)
  end)
end)

command("stop", "", "end the session (the peer is told) and disconnect", function(sh)
  need_session(sh):stop()
  sh.session = nil
end)

command("status", "", "show the session, the broker and the counters (never the password)", function(sh)
  local s = sh.session
  if not s then return say("no session") end
  local o = s.options
  say("session:  %s: %s", s.path, kinds[s.kind].describe(s))
  say("broker:   %s:%d over %s, MQTT %s, client id %s%s", o.host, o.port, o.tls and "TLS" or "plain TCP",
    o.protocol, s.client:id(), o.username and (", user %s%s"):format(o.username, o.password and " (password set)" or "") or "")
  say("topics:   %s, publishing on '%s', QoS %d%s",
    s.subtop and ("subscribed to '%s'"):format(s.subtop) or "nothing subscribed", s.pubtop, s.qos,
    s.retain and ", retained" or "")
  say("state:    %s, up %.0f s", kinds[s.kind].state(s), sts.now() - s.started_at)
  local rejected = kinds[s.kind].rejected or function() return s.stats.rejected end
  say("messages: %d sent, %d received, %d rejected", s.stats.sent, s.stats.received, rejected(s))
  for _, line in ipairs(kinds[s.kind].details and kinds[s.kind].details(s) or {}) do say("%s", line) end
  for topic in pairs(s.extra) do say("also subscribed to '%s'", topic) end
end)

--- A sealed session only seals: send and sendenc say so.
local function not_sealed(s)
  if kinds[s.kind].sendsealed then
    fail("this session sends sealed readings (%s): use sendsealed", kinds[s.kind].describe(s))
  end
end

command("send", "MSG", "send a message in clear (nosec sessions; to a group encrypted)", function(sh, text)
  local s = need_session(sh)
  not_sealed(s)
  local send = kinds[s.kind].send
  if send then return send(s, need_text(text, "send")) end
  if s:encrypted() then fail("encryption is on (%s): use sendenc", kinds[s.kind].describe(s)) end
  s:send_message(need_text(text, "send"), nil, true)
end)

command("sendenc", "MSG", "send a message encrypted (legacy, native and group sessions)", function(sh, text)
  local s = need_session(sh)
  not_sealed(s)
  if not s:encrypted() then fail("encryption is off (sts_mode = nosec): use send") end
  need_text(text, "sendenc")
  if not s.ready:wait(HANDSHAKE_WAIT) then
    fail("no session: the handshake did not complete within %d s", HANDSHAKE_WAIT)
  end
  kinds[s.kind].sendenc(s, text)
end)

command("sendsealed", "MSG", "send one sealed reading to the gateway (protocol = sealed sessions)",
  function(sh, text)
    local s = need_session(sh)
    local seal = kinds[s.kind].sendsealed
    if not seal then
      fail("not a sealed session (%s): use %s", kinds[s.kind].describe(s), s:encrypted() and "sendenc" or "send")
    end
    seal(s, need_text(text, "sendsealed"))
  end)

command("sub", "TOPIC", "also show plain messages on TOPIC (+ and # allowed)", function(sh, topic)
  local s = need_session(sh)
  if topic == "" then fail("sub needs a topic") end
  if topic == s.subtop or s.extra[topic] then fail("already subscribed to '%s'", topic) end
  local ok, err = s.client:subscribe(topic, function(t, payload) s:show_incoming(payload, t) end, { qos = s.qos })
  if not ok then fail("%s", err) end
  s.extra[topic] = true
end)

command("unsub", "TOPIC", "stop showing messages on TOPIC", function(sh, topic)
  local s = need_session(sh)
  if not s.extra[topic] then fail("'sub %s' was not used", topic) end
  s.client:unsubscribe(topic)
  s.extra[topic] = nil
end)

command("pub", "TOPIC MSG", "publish MSG in clear on TOPIC", function(sh, rest)
  local s = need_session(sh)
  local topic, text = rest:match("^(%S+)%s+(.+)$")
  if not topic then fail("pub needs a topic and a message") end
  s:send_message(text, topic, true)
end)

command("fingerprint", "", "show this side's and the peer's key fingerprints (native, group and sealed)", function(sh)
  local s = need_session(sh)
  if s.kind == "group" then
    say("this side:  %s", s.fingerprint)
    return say("key server: %s", s.keyserver)
  end
  if s.kind == "sealed" then
    say("this side: %s", s.fingerprint or "no identity (pattern N)")
    return say("gateway:   %s", s.gateway)
  end
  if s.kind ~= "sts" then
    fail("no keys: fingerprints belong to native sessions (protocol = sts, group or sealed)")
  end
  say("this side: %s", s.fingerprint or "no identity (pattern NN)")
  say("peer:      %s", s.session and (s.session.peer or "not authenticated") or "no session yet")
end)

--- The private key goes from C to a new file of mode 0600 (sts.keyfiles).
command("keygen", "NAME", "make a key pair: NAME.key (private, mode 0600) and NAME.pub", function(_, name)
  if name == "" then fail("keygen needs a name, e.g. keygen keys/me") end
  local fingerprint, err = keyfiles.write_pair(name)
  if not fingerprint then fail("%s%s", err, err:match("exists$") and ": remove it first" or "") end
  say("%s.key, %s.pub: %s", name, name, fingerprint)
end)

command("run", "SCRIPT [ARGS]", "run a Lua script in this shell (it gets the shell API as ...)", function(sh, rest)
  local args = {}
  for word in rest:gmatch("%S+") do args[#args + 1] = word end
  if #args == 0 then fail("run needs a Lua script") end
  local chunk, err = loadfile(table.remove(args, 1))
  if not chunk then fail("%s", err) end
  chunk(sh:script_api(), table.unpack(args))
end)

command("help", "", "show the commands", function()
  for _, c in ipairs(order) do
    say("  %-22s %s", c.name .. (c.args ~= "" and " " .. c.args or ""), c.help)
  end
end)

local function leave(sh) sh.leaving = true end
command("exit", "", "stop the session and leave", leave)
command("quit", "", "the same as exit", leave)

--- Runs one command line; returns true, or false and the error (printed).
function Shell:execute(line)
  local name, rest = line:match("^%s*(%S+)%s*(.-)%s*$")
  if not name or name:sub(1, 1) == "#" then return true end -- blank or a comment
  local fn = commands[name]
  local ok, err = false, ("unknown command '%s' (type help for the list)"):format(printable(name))
  if fn then ok, err = pcall(fn, self, rest) end
  if ok then return true end
  say("error: %s", err)
  return false, err
end

--- What a script started with `run` gets as its first argument.
function Shell:script_api()
  return {
    command = function(line) return self:execute(line) end,
    print = function(...)
      local parts = table.pack(...)
      for i = 1, parts.n do parts[i] = tostring(parts[i]) end
      sts.print_async(table.concat(parts, "\t", 1, parts.n))
    end,
    client = function() return self.session and self.session.client end,
  }
end

local EOF = {}

--- Queues a line to run as a command, nil (EOF) or a function to run
-- between commands.
function Shell:feed(line)
  self.queue[#self.queue + 1] = line == nil and EOF or line
  local wake = self.wake
  self.wake = nil
  if wake then wake:set() end
end

--- The one task that runs commands, in order, until exit or EOF.
function Shell:work()
  while not self.leaving do
    if #self.queue == 0 then
      self.wake = sts.future()
      self.wake:wait()
    end
    local line = table.remove(self.queue, 1)
    if line == EOF then break end
    if type(line) == "function" then line() else self:execute(line) end
  end
  if self.session then pcall(self.session.stop, self.session) end
  self.session = nil
  sts.stdin(nil)
  sts.stop()
end

function shell.main()
  -- The shell says what happens itself; the library's info lines would
  -- repeat it on stderr (STS_LOG still chooses).
  if not os.getenv("STS_LOG") then sts.log.level = "warn" end
  local sh = setmetatable({ queue = {} }, Shell)
  local interactive = sts.stdin(function(line) sh:feed(line) end)
  if interactive then say("Secure Telemetry Shell %s: type help for the commands", sts.version) end
  sts.task(function() sh:work() end)
  sts.run()
end

return shell
