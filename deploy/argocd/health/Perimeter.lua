-- Perimeter: Ready means the spec is valid and every VHostVersion of the perimeter is Ready (a VHostVersion
-- that is not shows as VHostVersionsNotReady: Progressing here, the VHostVersion itself says whether it failed).
local kind = {
  failureReasons = {},
}

function kind.summary(obj)
  local vhosts = obj.status.vhosts or {}
  local message = #vhosts .. " vhost(s)"
  if #vhosts > 0 then
    message = message .. ": " .. table.concat(vhosts, ", ")
  end
  if obj.status.useCases ~= nil then
    message = message .. "; use cases: " .. obj.status.useCases
  end
  return message
end

return assess(obj, kind)
