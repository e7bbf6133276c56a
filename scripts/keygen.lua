-- Makes an identity key pair: NAME.key (private, mode 0600) and NAME.pub,
-- and prints the public key's fingerprint.
--   sts-lua scripts/keygen.lua NAME [--force]
local sts = require "sts"
local cli = require "sts.cli"

local opts, names = cli.parse(arg, {
  usage = "sts-lua scripts/keygen.lua NAME [--force]",
  positional = 1,
  options = { force = { "--force", flag = true } },
})
local name = names[1]

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

if not opts.force and (exists(name .. ".key") or exists(name .. ".pub")) then
  io.stderr:write(name .. ".key or " .. name .. ".pub exists; --force replaces them\n")
  os.exit(1)
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local private, public = sts.keygen()
-- The private key file is made empty and 0600 before a secret goes in.
local key = name .. ".key"
assert(os.execute("umask 077 && : > " .. sh_quote(key) .. " && chmod 600 " .. sh_quote(key)), "cannot create " .. key)
local f = assert(io.open(key, "w"))
f:write(private)
f:close()
f = assert(io.open(name .. ".pub", "w"))
f:write(public)
f:close()
print(string.format("%s.key, %s.pub: %s", name, name, sts.fingerprint(public)))
