--- The shell's config rules (lua/sts/shell/config.lua) over any file: the
-- input is the config file. It is read and checked as the shell's start
-- does (Config.load, kind, connect_options, the kind's own options); every
-- refusal must be an error raised on purpose, one line, starting with the
-- file's name. Key files named in it are paths of this machine: read, never
-- written.
local Config = require "sts.shell.config"
local fuzzing = require "fuzzing"

local function names_file(err, path)
  fuzzing.check(err:sub(1, #path + 1) == path .. ":", "error does not start with the file: %q", err)
  fuzzing.check(not err:find("\n"), "error is more than one line: %q", err)
end

--- What Session.start asks of a config, in its order.
local function options(config)
  local kind, role = config:kind()
  config:integer("qos", 0)
  config:bool("is_retained", false)
  config:connect_options()
  if kind == "group" then config:group_options()
  elseif kind == "sealed" then config:sealed_options()
  else config:topics(role) end
  if kind == "sts" then config:native_options(role) end
end

return function(input)
  local path = fuzz_file(input)
  local ok, config = fuzzing.try("Config.load", Config.load, path)
  if not ok then return names_file(config, path) end
  local done, err = fuzzing.try("options", options, config)
  if not done then names_file(err, path) end
end
