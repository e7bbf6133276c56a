--- sts.options: checking the options table a module's function is given
-- (sts.group and its SMQTT format share it).
local options = {}

--- The set of the names in list: { name = true, ... }.
function options.set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

--- Raises an error unless opts is a table whose keys are all in the set
-- known; what names the function in the message. The error is the caller's
-- caller's: it points at whoever called the function that checks.
function options.check(opts, known, what)
  if type(opts) ~= "table" then error(what .. ": options must be a table", 3) end
  for k in pairs(opts) do
    if not known[k] then error(string.format("%s: unknown option '%s'", what, tostring(k)), 3) end
  end
end

return options
