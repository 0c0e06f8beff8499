-- POST /api/v1/signup with a unique e-mail per request: `wrk ... -- <run nonce>`.
local nonce = "x"
local counter = 0
local thread_id = 0
local threads = 0

setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

init = function(args)
  nonce = args[1] or nonce
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"name": "Bench User", "email": "bench-%s-%d-%d@example.com", ' ..
    '"password": "correct horse battery staple"}', nonce, thread_id, counter)
  return wrk.format("POST", "/api/v1/signup", {["Content-Type"] = "application/json"}, body)
end
