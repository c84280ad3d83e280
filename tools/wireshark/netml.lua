-- Wireshark dissector for the netml wire protocol, version 1 (docs/protocol.md):
--   * fragments: 22-byte header (magic 0x4E4D "NM"), 64-byte tensor descriptor on
--     fragment 0, tensor bytes; the header checksum (section 4.4) is verified;
--   * result messages (section 9): magic 0x4E52 "NR", status, arrived, CRC-32, sender
--     timestamp, six stage timestamps, top-k entries.
-- Registered on UDP port 9000 (preference "UDP port") and as a heuristic UDP dissector
-- that recognizes either magic with version 1, so other ports work too.
--
-- Use: tshark -X lua_script:tools/wireshark/netml.lua -r capture.pcap
--  or: copy this file to ~/.local/lib/wireshark/plugins/ (see tools/wireshark/README.md).

local netml = Proto("netml", "netml tensor transport")

local FRAG_MAGIC = 0x4E4D
local RESULT_MAGIC = 0x4E52
local VERSION = 1
local HEADER_LEN = 22
local DESC_LEN = 64
local RESULT_LEN = 72
local ENTRY_LEN = 8
local MAX_TOP_K = 32
local DEFAULT_PORT = 9000

local dtypes = { [1] = "u8", [2] = "f16", [3] = "f32" }
local dtype_sizes = { [1] = 1, [2] = 2, [3] = 4 }
local layouts = { [0] = "plain", [1] = "NCHW", [2] = "NHWC" }
local statuses = {
    [0] = "ok", [1] = "overloaded", [2] = "unknown_model",
    [3] = "failed", [4] = "shape_mismatch", [5] = "incomplete",
}
local stage_names = { "rx_first", "rx_complete", "dispatched", "ingested", "inferred", "sent" }
-- The values Wireshark's own checksum fields use (proto_checksum_vals).
local checksum_status_vals = { [0] = "Bad", [1] = "Good", [2] = "Unverified" }
local msg_types = { [0] = "fragment", [1] = "result" }

local f = netml.fields
-- Common to fragments and results.
f.type = ProtoField.uint8("netml.type", "Message type", base.DEC, msg_types)
f.magic = ProtoField.uint16("netml.magic", "Magic", base.HEX)
f.version_flags = ProtoField.uint8("netml.version_flags", "Version and flags", base.HEX)
f.version = ProtoField.uint8("netml.version", "Version", base.DEC, nil, 0xF0)
f.model = ProtoField.uint8("netml.model", "Model", base.DEC)
f.image = ProtoField.uint32("netml.image", "Image", base.DEC)
-- Fragment header.
f.flags = ProtoField.uint8("netml.flags", "Flags", base.HEX, nil, 0x0F)
f.flag_descriptor = ProtoField.bool("netml.flags.descriptor", "DESCRIPTOR", 8, nil, 0x01)
f.flag_unknown = ProtoField.uint8("netml.flags.unknown", "Unknown flags (must be zero)", base.HEX, nil, 0x0E)
f.index = ProtoField.uint16("netml.index", "Fragment index", base.DEC)
f.count = ProtoField.uint16("netml.count", "Fragment count", base.DEC)
f.frag_size = ProtoField.uint16("netml.frag_size", "Fragment size", base.DEC)
f.total_bytes = ProtoField.uint32("netml.total_bytes", "Total bytes", base.DEC)
f.checksum = ProtoField.uint16("netml.checksum", "Header checksum", base.HEX)
f.checksum_status = ProtoField.uint8("netml.checksum.status", "Header checksum status", base.DEC, checksum_status_vals)
f.checksum_calculated = ProtoField.uint16("netml.checksum.calculated", "Calculated checksum", base.HEX)
f.reserved = ProtoField.uint16("netml.reserved", "Reserved", base.HEX)
-- Descriptor.
f.desc = ProtoField.none("netml.desc", "Tensor descriptor")
f.dtype = ProtoField.uint8("netml.desc.dtype", "dtype", base.DEC, dtypes)
f.layout = ProtoField.uint8("netml.desc.layout", "Layout", base.DEC, layouts)
f.rank = ProtoField.uint8("netml.desc.rank", "Rank", base.DEC)
f.desc_reserved = ProtoField.uint8("netml.desc.reserved", "Reserved", base.HEX)
f.shape = ProtoField.string("netml.desc.shape", "Shape")
f.dim = ProtoField.uint32("netml.desc.dim", "Dimension", base.DEC)
f.dim_unused = ProtoField.uint32("netml.desc.dim_unused", "Unused dimension (must be zero)", base.DEC)
f.timestamp = ProtoField.uint64("netml.desc.timestamp", "Sender timestamp (ns)", base.DEC)
f.crc32 = ProtoField.uint32("netml.desc.crc32", "Tensor CRC-32", base.HEX)
f.desc_reserved2 = ProtoField.bytes("netml.desc.reserved2", "Reserved")
-- Payload.
f.data = ProtoField.bytes("netml.data", "Tensor bytes")
f.data_len = ProtoField.uint32("netml.data.len", "Tensor bytes length", base.DEC)
f.data_offset = ProtoField.uint32("netml.data.offset", "Tensor offset", base.DEC)
-- Result message.
f.status = ProtoField.uint8("netml.result.status", "Status", base.DEC, statuses)
f.k = ProtoField.uint8("netml.result.k", "k (top-k entries)", base.DEC)
f.arrived = ProtoField.uint16("netml.result.arrived", "Arrived fragments", base.DEC)
f.result_crc32 = ProtoField.uint32("netml.result.crc32", "Gathered tensor CRC-32", base.HEX)
f.sender_timestamp = ProtoField.uint64("netml.result.sender_timestamp", "Sender timestamp (ns)", base.DEC)
f.stages = ProtoField.none("netml.result.stages", "Stage timestamps")
local stage_fields = {}
for i, name in ipairs(stage_names) do
    local fld = ProtoField.uint64("netml.result.stage." .. name, name .. " (ns)", base.DEC)
    stage_fields[i] = fld
    f["stage_" .. name] = fld
end
f.entry = ProtoField.none("netml.result.entry", "Top-k entry")
f.class = ProtoField.uint32("netml.result.class", "Class", base.DEC)
f.score = ProtoField.float("netml.result.score", "Score")
f.trailing = ProtoField.bytes("netml.result.trailing", "Trailing bytes")

local ef = {
    bad_checksum = ProtoExpert.new("netml.checksum.bad", "Bad header checksum",
        expert.group.CHECKSUM, expert.severity.ERROR),
    truncated = ProtoExpert.new("netml.truncated", "Truncated message",
        expert.group.MALFORMED, expert.severity.ERROR),
    malformed = ProtoExpert.new("netml.malformed", "Malformed field",
        expert.group.MALFORMED, expert.severity.WARN),
}
netml.experts = { ef.bad_checksum, ef.truncated, ef.malformed }

netml.prefs.udp_port = Pref.uint("UDP port", DEFAULT_PORT,
    "UDP port of netml fragments and results (other ports are found by the heuristic)")

-- RFC 1071 one's-complement sum of big-endian 16-bit words over tvb[0, len) (len even),
-- with the 16-bit word at `skip` (if given) taken as zero. Returns a value in 0..0xFFFF.
local function ones_sum(tvb, len, skip)
    local sum = 0
    for off = 0, len - 2, 2 do
        if off ~= skip then
            sum = sum + tvb(off, 2):uint()
        end
    end
    while sum > 0xFFFF do
        sum = (sum % 0x10000) + math.floor(sum / 0x10000)
    end
    return sum
end

local function fmt_score(x)
    return string.format("%.3g", x)
end

local function dissect_fragment(tvb, pinfo, tree)
    local len = tvb:len()
    local t = tree:add(netml, tvb(0, math.min(len, HEADER_LEN)), "netml fragment")
    t:add(f.type, 0):set_generated()
    if len < HEADER_LEN then
        t:add_proto_expert_info(ef.truncated, "Fragment shorter than its 22-byte header")
        pinfo.cols.info = "netml fragment (truncated)"
        return
    end
    local vf = tvb(2, 1):uint()
    local flags = vf % 16
    local has_desc = (flags % 2) == 1
    local model = tvb(3, 1):uint()
    local image = tvb(4, 4):uint()
    local index = tvb(8, 2):uint()
    local count = tvb(10, 2):uint()
    local frag_size = tvb(12, 2):uint()
    local total = tvb(14, 4):uint()

    t:add(f.magic, tvb(0, 2)):append_text(' ("NM")')
    local vft = t:add(f.version_flags, tvb(2, 1))
    vft:add(f.version, tvb(2, 1))
    local ft = vft:add(f.flags, tvb(2, 1))
    ft:add(f.flag_descriptor, tvb(2, 1))
    local unk = ft:add(f.flag_unknown, tvb(2, 1))
    if flags >= 2 then
        unk:add_proto_expert_info(ef.malformed, "Unknown flags set: the fragment is unrecognized")
    end
    t:add(f.model, tvb(3, 1))
    t:add(f.image, tvb(4, 4))
    local it = t:add(f.index, tvb(8, 2))
    if index >= count then
        it:add_proto_expert_info(ef.malformed, "index >= count")
    end
    t:add(f.count, tvb(10, 2))
    t:add(f.frag_size, tvb(12, 2))
    t:add(f.total_bytes, tvb(14, 4))

    -- Header checksum over 22 bytes, or 86 with the descriptor (section 4.4).
    local covered = HEADER_LEN
    if has_desc then covered = HEADER_LEN + DESC_LEN end
    local stored = tvb(18, 2):uint()
    local ct = t:add(f.checksum, tvb(18, 2))
    local good = nil
    if len >= covered then
        t:set_len(covered)
        local computed = 0xFFFF - ones_sum(tvb, covered, 18)
        good = ones_sum(tvb, covered, nil) == 0xFFFF
        if good then
            ct:append_text(" [correct]")
            t:add(f.checksum_status, 1):set_generated()
        else
            ct:append_text(string.format(" [incorrect, should be 0x%04x]", computed))
            t:add(f.checksum_status, 0):set_generated()
            ct:add_proto_expert_info(ef.bad_checksum,
                string.format("Bad header checksum: 0x%04x, should be 0x%04x", stored, computed))
        end
        t:add(f.checksum_calculated, computed):set_generated()
    else
        ct:append_text(" [unverified: truncated]")
        t:add(f.checksum_status, 2):set_generated()
    end
    t:add(f.reserved, tvb(20, 2))

    local data_off = HEADER_LEN
    local shape = nil
    if has_desc then
        if len < HEADER_LEN + DESC_LEN then
            t:add_proto_expert_info(ef.truncated, "Descriptor truncated")
            data_off = len
        else
            local d = tvb(HEADER_LEN, DESC_LEN)
            local dt = t:add(f.desc, d)
            local dtype = d(0, 1):uint()
            local rank = d(2, 1):uint()
            local dti = dt:add(f.dtype, d(0, 1))
            if dtypes[dtype] == nil then dti:add_proto_expert_info(ef.malformed, "Unknown dtype") end
            local li = dt:add(f.layout, d(1, 1))
            if layouts[d(1, 1):uint()] == nil then li:add_proto_expert_info(ef.malformed, "Unknown layout") end
            local ri = dt:add(f.rank, d(2, 1))
            if rank < 1 or rank > 6 then ri:add_proto_expert_info(ef.malformed, "Rank must be 1..6") end
            dt:add(f.desc_reserved, d(3, 1))
            local dims = {}
            local product = dtype_sizes[dtype] or 0
            for i = 0, 5 do
                local r = d(4 + 4 * i, 4)
                if i < rank then
                    dims[#dims + 1] = tostring(r:uint())
                    product = product * r:uint()
                    dt:add(f.dim, r):prepend_text(string.format("[%d] ", i))
                else
                    dt:add(f.dim_unused, r):prepend_text(string.format("[%d] ", i))
                end
            end
            shape = table.concat(dims, "x")
            local si = dt:add(f.shape, shape):set_generated()
            if dtype_sizes[dtype] ~= nil and product ~= total then
                si:add_proto_expert_info(ef.malformed,
                    string.format("Shape x element size = %.0f, total_bytes = %d", product, total))
            end
            dt:append_text(string.format(": %s %s %s", dtypes[dtype] or "?",
                layouts[d(1, 1):uint()] or "?", shape))
            dt:add(f.timestamp, d(28, 8))
            dt:add(f.crc32, d(36, 4))
            dt:add(f.desc_reserved2, d(40, 24))
            data_off = HEADER_LEN + DESC_LEN
        end
    end
    local data_len = len - data_off
    if data_len > 0 then
        local di = tree:add(f.data, tvb(data_off, data_len))
        di:set_text(string.format("Tensor bytes (%d bytes)", data_len))
        di:add(f.data_len, data_len):set_generated()
        di:add(f.data_offset, index * frag_size):set_generated()
    else
        tree:add(f.data_len, 0):set_generated()
    end

    t:append_text(string.format(", frag %d/%d, model %d, image %d", index, count, model, image))
    local info = string.format("netml frag %d/%d model %d image %d", index, count, model, image)
    if shape ~= nil then info = info .. " " .. (dtypes[tvb(22, 1):uint()] or "?") .. " " .. shape end
    info = info .. string.format(" len %d", data_len)
    if good == false then info = info .. " [BAD CHECKSUM]" end
    pinfo.cols.info = info
end

local function dissect_result(tvb, pinfo, tree)
    local len = tvb:len()
    local t = tree:add(netml, tvb(), "netml result")
    t:add(f.type, 1):set_generated()
    if len < RESULT_LEN then
        t:add_proto_expert_info(ef.truncated, "Result shorter than 72 bytes")
        pinfo.cols.info = "netml result (truncated)"
        return
    end
    local model = tvb(3, 1):uint()
    local image = tvb(4, 4):uint()
    local status = tvb(8, 1):uint()
    local k = tvb(9, 1):uint()
    local arrived = tvb(10, 2):uint()
    t:add(f.magic, tvb(0, 2)):append_text(' ("NR")')
    local vft = t:add(f.version_flags, tvb(2, 1))
    vft:add(f.version, tvb(2, 1))
    t:add(f.model, tvb(3, 1))
    t:add(f.image, tvb(4, 4))
    local si = t:add(f.status, tvb(8, 1))
    if statuses[status] == nil then si:add_proto_expert_info(ef.malformed, "Unknown status") end
    local ki = t:add(f.k, tvb(9, 1))
    if k > MAX_TOP_K then ki:add_proto_expert_info(ef.malformed, "k > 32") end
    t:add(f.arrived, tvb(10, 2))
    t:add(f.result_crc32, tvb(12, 4))
    t:add(f.sender_timestamp, tvb(16, 8))
    local st = t:add(f.stages, tvb(24, 48))
    for i = 1, 6 do
        st:add(stage_fields[i], tvb(24 + 8 * (i - 1), 8))
    end
    local top = {}
    local n = k
    if RESULT_LEN + ENTRY_LEN * k > len then
        t:add_proto_expert_info(ef.truncated, "Fewer bytes than k entries need")
        n = math.floor((len - RESULT_LEN) / ENTRY_LEN)
    end
    for i = 0, n - 1 do
        local at = RESULT_LEN + ENTRY_LEN * i
        local class = tvb(at, 4):uint()
        local score = tvb(at + 4, 4):float()
        local et = t:add(f.entry, tvb(at, ENTRY_LEN))
        et:set_text(string.format("Top-%d: class %d, score %s", i + 1, class, fmt_score(score)))
        et:add(f.class, tvb(at, 4))
        et:add(f.score, tvb(at + 4, 4))
        top[#top + 1] = { class, score }
    end
    local used = RESULT_LEN + ENTRY_LEN * n
    if len > used then t:add(f.trailing, tvb(used, len - used)) end

    local sname = statuses[status] or string.format("status %d", status)
    local info = string.format("netml result model %d image %d %s", model, image, sname)
    if #top > 0 then
        info = info .. string.format(" top1 %d (%s)", top[1][1], fmt_score(top[1][2]))
    end
    if status == 5 then info = info .. string.format(" arrived %d", arrived) end
    t:append_text(string.format(", model %d, image %d, %s", model, image, sname))
    pinfo.cols.info = info
end

-- Which message a UDP payload is: "fragment", "result" or nil.
local function kind(tvb)
    if tvb:len() < 3 then return nil end
    local magic = tvb(0, 2):uint()
    local version = math.floor(tvb(2, 1):uint() / 16)
    if version ~= VERSION then return nil end
    if magic == FRAG_MAGIC then return "fragment" end
    if magic == RESULT_MAGIC then return "result" end
    return nil
end

function netml.dissector(tvb, pinfo, tree)
    local k = kind(tvb)
    if k == nil then return 0 end
    pinfo.cols.protocol = "NETML"
    if k == "fragment" then
        dissect_fragment(tvb, pinfo, tree)
    else
        dissect_result(tvb, pinfo, tree)
    end
    return tvb:len()
end

local function heuristic(tvb, pinfo, tree)
    if kind(tvb) == nil then return false end
    netml.dissector(tvb, pinfo, tree)
    return true
end

local udp_port_table = DissectorTable.get("udp.port")
local registered_port = DEFAULT_PORT
udp_port_table:add(registered_port, netml)
netml:register_heuristic("udp", heuristic)

function netml.prefs_changed()
    if netml.prefs.udp_port ~= registered_port then
        if registered_port ~= 0 then udp_port_table:remove(registered_port, netml) end
        registered_port = netml.prefs.udp_port
        if registered_port ~= 0 then udp_port_table:add(registered_port, netml) end
    end
end
