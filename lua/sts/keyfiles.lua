--- sts.keyfiles: identity key pairs written to files, for scripts/keygen.lua
-- and the shell's keygen command.
local sts = require "sts"

local keyfiles = {}

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function write(path, text)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:write(text)
  f:close()
  return true
end

--- Makes a key pair and writes NAME.key (private, mode 0600: the file is
-- made empty and private before the secret goes in) and NAME.pub. Existing
-- files are kept unless `force`. Returns the public key's fingerprint, or
-- nil and a message.
function keyfiles.write_pair(name, force)
  local key, pub = name .. ".key", name .. ".pub"
  if not force then
    for _, path in ipairs({ key, pub }) do
      if exists(path) then return nil, path .. " exists" end
    end
  end
  local private, public = sts.keygen()
  if not os.execute("umask 077 && : > " .. sh_quote(key) .. " && chmod 600 " .. sh_quote(key)) then
    return nil, "cannot create " .. key
  end
  local ok, err = write(key, private)
  if ok then ok, err = write(pub, public) end
  if not ok then return nil, err end
  return sts.fingerprint(public)
end

return keyfiles
