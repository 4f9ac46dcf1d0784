// Streaming max pool (StreamingMaxPool, hls/nodes/maxpool.py, include/maxpool.hpp): any kernel and
// stride, overlapping windows included, no padding, floor mode.
//
// In: an H x W image of CH channels, NHWC, CF = CH/PE words of PE elements per pixel.  Out: OH x OW
// pixels, out(oy, ox) = max over the KH x KW window at (oy*SH, ox*SW), lane by lane (SIGNED: two's
// complement; else unsigned, which is an OR for 1-bit BINARY and BIPOLAR lanes).
//
// The running maxima of the HLS kernel: NR = ceil(KH/SH) rows x NX = ceil(KW/SW) memories (the windows
// one input word can be in), each ceil(OWB/NX)*CF words; window (oy, ox) lives in memory
// (oy % NR, ox % NX) at (ox / NX)*CF + cf (OWB = OW; for KH = 1 only the NX open windows, at cf).
// Every input word updates each window it is in: the window's first word starts it, its last word
// sends it out (at most one window ends on a word), so one input word a cycle: H*W*CF cycles an
// image.  Stage 0 reads the memories (synchronously: block RAM possible), stage 1 takes the maxima,
// writes them back and fills the output register; a word updating the window its predecessor just
// wrote gets that value forwarded.  Everything stalls while stage 1 must send a window out and the
// output register is full.
module qnnflow_maxpool #(
    parameter H = 2,
    parameter W = 2,
    parameter CH = 1,
    parameter PE = 1,
    parameter BITS = 1,
    parameter SIGNED = 0,
    parameter KH = 2,
    parameter KW = 2,
    parameter SH = 2,
    parameter SW = 2,
    parameter OH = 1,
    parameter OW = 1,
    parameter RAM_STYLE = "auto"  // the running maxima's (qnnflow_sdp_ram STYLE)
) (
    input wire clk,
    input wire rst,
    input wire [PE*BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output reg [PE*BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    localparam CF = CH / PE;
    localparam XW = PE * BITS;
    localparam NR = (KH + SH - 1) / SH;
    localparam NX = (KW + SW - 1) / SW;
    localparam OWB = KH == 1 ? NX : OW;
    localparam DEPTH = (OWB + NX - 1) / NX * CF;
    localparam M = NR * NX;
    localparam AW = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam CFW = CF > 1 ? $clog2(CF) : 1;
    localparam YW = $clog2(H + SH + 1) + 1;
    localparam XCW = $clog2(W + SW + 1) + 1;
    localparam RW = $clog2(NR + 1);
    localparam NXW = $clog2(NX + 1);
    localparam SHW = $clog2(SH + 1);
    localparam SWW = $clog2(SW + 1);

    // ----- stage 0: the input word's position: y = qy*SH + ry, x = qx*SW + rx, channel word cf
    reg [CFW-1:0] cf;
    reg [XCW-1:0] x, qx;
    reg [SWW-1:0] rx;
    reg [NXW-1:0] qx_r;       // qx % NX
    reg [AW-1:0] qx_base;     // (qx / NX) * CF
    reg [YW-1:0] y, qy;
    reg [SHW-1:0] ry;
    reg [RW-1:0] qy_r;        // qy % NR
    wire en;
    assign in_ready = en;
    wire in_fire = in_valid && en;

    always @(posedge clk) begin
        if (rst) begin
            cf <= 0;
            x <= 0; qx <= 0; rx <= 0; qx_r <= 0; qx_base <= 0;
            y <= 0; qy <= 0; ry <= 0; qy_r <= 0;
        end else if (in_fire) begin
            if (cf == CF - 1) begin
                cf <= 0;
                if (x == W - 1) begin
                    x <= 0; qx <= 0; rx <= 0; qx_r <= 0; qx_base <= 0;
                    if (y == H - 1) begin
                        y <= 0; qy <= 0; ry <= 0; qy_r <= 0;
                    end else begin
                        y <= y + 1'b1;
                        if (ry == SH - 1) begin
                            ry <= 0;
                            qy <= qy + 1'b1;
                            qy_r <= qy_r == NR - 1 ? {RW{1'b0}} : qy_r + 1'b1;
                        end else begin
                            ry <= ry + 1'b1;
                        end
                    end
                end else begin
                    x <= x + 1'b1;
                    if (rx == SW - 1) begin
                        rx <= 0;
                        qx <= qx + 1'b1;
                        if (qx_r == NX - 1) begin
                            qx_r <= 0;
                            qx_base <= qx_base + CF;
                        end else begin
                            qx_r <= qx_r + 1'b1;
                        end
                    end else begin
                        rx <= rx + 1'b1;
                    end
                end
            end else begin
                cf <= cf + 1'b1;
            end
        end
    end

    function [XW-1:0] lane_max(input [XW-1:0] a, input [XW-1:0] b);
        integer i;
        reg signed [BITS:0] va, vb;
        begin
            for (i = 0; i < PE; i = i + 1) begin
                va = {SIGNED != 0 && a[i*BITS + BITS - 1], a[i*BITS +: BITS]};
                vb = {SIGNED != 0 && b[i*BITS + BITS - 1], b[i*BITS +: BITS]};
                lane_max[i*BITS +: BITS] = va > vb ? a[i*BITS +: BITS] : b[i*BITS +: BITS];
            end
        end
    endfunction

    // ----- stage 1 registers
    reg s1_valid;
    reg [XW-1:0] s1_v;
    wire [M-1:0] emit_at;
    wire s1_emit = s1_valid && emit_at != 0;
    assign en = !(s1_emit && out_valid && !out_ready);
    wire s1_go = en && s1_valid;
    wire [M*XW-1:0] maxima;

    genvar r, k;
    generate
        for (r = 0; r < NR; r = r + 1) begin : row
            for (k = 0; k < NX; k = k + 1) begin : col
                localparam J = r * NX + k;
                // the window (qy - dy, qx - dx) of this word that lives in this memory
                wire [RW-1:0] dy = qy_r >= r ? qy_r - r : qy_r + NR - r;
                wire [NXW-1:0] dx = qx_r >= k ? qx_r - k : qx_r + NX - k;
                wire [YW-1:0] ey = dy * SH + ry;  // the word's row and column in the window
                wire [XCW-1:0] ex = dx * SW + rx;
                wire ok = dy <= qy && qy - dy < OH && ey < KH && dx <= qx && qx - dx < OW && ex < KW;
                wire [AW-1:0] addr = KH == 1 ? cf : (dx > qx_r ? qx_base - CF : qx_base) + cf;
                reg s1_ok, s1_first, s1_last, fwd;
                reg [AW-1:0] s1_addr;
                reg [XW-1:0] fwd_value;
                wire [XW-1:0] rdata;
                wire [XW-1:0] old = fwd ? fwd_value : rdata;
                wire [XW-1:0] m = s1_first ? s1_v : lane_max(old, s1_v);
                assign maxima[J*XW +: XW] = m;
                assign emit_at[J] = s1_ok && s1_last;
                qnnflow_sdp_ram #(.WIDTH(XW), .DEPTH(DEPTH), .STYLE(RAM_STYLE)) ram (
                    .clk(clk), .we(s1_go && s1_ok), .waddr(s1_addr), .wdata(m),
                    .re(en), .raddr(addr), .rdata(rdata));
                always @(posedge clk) begin
                    if (rst) s1_ok <= 1'b0;
                    else if (en) s1_ok <= in_fire && ok;
                    if (en) begin
                        s1_first <= ey == 0 && ex == 0;
                        s1_last <= ey == KH - 1 && ex == KW - 1;
                        s1_addr <= addr;
                        // the word read now is the one stage 1 writes now: take the new value next cycle
                        fwd <= s1_valid && s1_ok && in_fire && ok && addr == s1_addr;
                        fwd_value <= m;
                    end
                end
            end
        end
    endgenerate

    reg [XW-1:0] result;
    integer j;
    always @* begin
        result = 0;
        for (j = 0; j < M; j = j + 1)
            if (emit_at[j]) result = maxima[j*XW +: XW];
    end

    always @(posedge clk) begin
        if (rst) s1_valid <= 1'b0;
        else if (en) s1_valid <= in_fire;
        if (en) s1_v <= in_data;
        if (rst) out_valid <= 1'b0;
        else if (s1_go && s1_emit) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (s1_go && s1_emit) out_data <= result;
    end
endmodule
