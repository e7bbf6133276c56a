--- What the Lua drivers share (fuzz/lua_harness.c runs them).
local fuzzing = {}

--- Whether err is an error an input may cause: a string raised on purpose
-- (error(msg, 0), or a message naming the file). A runtime error in Lua code
-- starts with the position in the source ("config.lua:12: attempt to ...")
-- and is a bug, as is an error value that is not a string.
function fuzzing.expected(err)
  return type(err) == "string" and not err:find("^[%w_/%.%-]+%.lua:%d+: ")
end

--- Calls fn(...); returns true and its results, or false and an expected
-- error; raises any other error again, with what was called.
function fuzzing.try(what, fn, ...)
  local result = table.pack(pcall(fn, ...))
  if not result[1] and not fuzzing.expected(result[2]) then
    error(("%s: unexpected error: %s"):format(what, tostring(result[2])), 0)
  end
  return table.unpack(result, 1, result.n)
end

--- Raises an error unless ok.
function fuzzing.check(ok, fmt, ...)
  if not ok then error("check failed: " .. fmt:format(...), 0) end
end

return fuzzing
