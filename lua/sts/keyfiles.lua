--- sts.keyfiles: identity key pairs written to files, for scripts/keygen.lua
-- and the shell's keygen command.
local sts = require "sts"

local keyfiles = {}

--- Whether something is at path, without opening it (io.open would wait
-- forever on a FIFO): renaming a file to itself changes nothing. Anything
-- but "no such file" counts as there.
local function exists(path)
  local ok, _, code = os.rename(path, path)
  return ok or code ~= 2 -- ENOENT
end

--- Makes a key pair and writes NAME.key (private, mode 0600) and NAME.pub,
-- each as a new file from C, so the secret never becomes a Lua string.
-- Existing files are kept unless `force`. Returns the public key's
-- fingerprint, or nil and a message.
function keyfiles.write_pair(name, force)
  local keypath, pubpath = name .. ".key", name .. ".pub"
  -- Checked first, so that neither file is written when either exists.
  if not force then
    for _, path in ipairs({ keypath, pubpath }) do
      if exists(path) then return nil, path .. " exists" end
    end
  end
  local key <close>, public = sts.keygen()
  local opts = { force = force }
  local ok, err = key:save(keypath, opts)
  if ok then ok, err = sts.write_public_key(pubpath, public, opts) end
  if not ok then return nil, err end
  return key:fingerprint()
end

return keyfiles
