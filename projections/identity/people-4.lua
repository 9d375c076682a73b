-- Contacts with their company, in one call. KEYS: event → contact (`id:evc`), contacts, company map, companies.
-- a.events: event ULIDs (each resolved through `id:evc`), or a.contacts: contact ids. For each one, in order:
-- its contact's document — a merged-away contact resolves to its survivor — and that contact's company document
-- (its stored `membership`: `co:<id>` names the company, `d:<domain>` is looked up in the company map), false
-- where there is none: {contact₁, company₁, contact₂, company₂, …}.
local a = cmsgpack.unpack(ARGV[1])
local function survivor(cid)
  for _ = 1, 16 do
    local raw = redis.call('HGET', KEYS[2], cid)
    if not raw then return false end
    local doc = cjson.decode(raw)
    local into = doc.merged_into
    if into == nil or into == cjson.null then return raw, doc end
    cid = into
  end
  return false
end
local function company(doc)
  local m = doc.membership
  if type(m) ~= 'string' then return false end
  local coid
  if string.sub(m, 1, 3) == 'co:' then coid = string.sub(m, 4) else coid = redis.call('HGET', KEYS[3], m) end
  if not coid then return false end
  return redis.call('HGET', KEYS[4], coid)
end
local cids
if a.events then
  cids = #a.events > 0 and redis.call('HMGET', KEYS[1], unpack(a.events)) or {}
else
  cids = a.contacts
end
local out, done = {}, {}
for i = 1, #cids do
  local cid = cids[i]
  local found = cid and done[cid]
  if cid and not found then
    local raw, doc = survivor(cid)
    found = {raw, raw and company(doc) or false}
    done[cid] = found
  end
  out[2 * i - 1] = found and found[1] or false
  out[2 * i] = found and found[2] or false
end
return out
