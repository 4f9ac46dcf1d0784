// Window sums on an NHWC stream: SumPool (hls/nodes/sum_pool.py, include/sum_pool.hpp) and, as
// one H=1 x W=PIXELS window, GlobalAccPool (hls/nodes/global_acc_pool.py).  Any kernel and
// stride, no padding, floor mode: out(oy, ox)[c] = sum of the KH x KW window at (oy*SH, ox*SW),
// OUT_BITS-bit lanes, PE lanes and CF words a pixel.
//
// The running sums are maxpool.hpp's: window (oy, ox) lives in bank (oy % NR, ox % NX) of NR x NX
// banks (NR = ceil(KH/SH), NX = ceil(KW/SW): the windows one input word updates, each in its own
// bank), at word ((ox % OWB) / NX) * CF + cf, OWB = OW (or NX for KH = 1, whose windows close
// within their row).  Every input word adds itself to each window containing it; the window whose
// first element it is starts from zero, the one whose last element it is leaves as the output word
// (raster order, at most one per input word).  One input word a cycle.
//
// Two stages: A takes the input word, finds its windows and reads their sums (synchronous reads),
// B adds and writes the sums back or to the output register.  A sum B writes while A reads that
// memory word (CF = 1: consecutive pixels of a window) is forwarded.  Everything stalls together
// while the output register is held.
module qnnflow_sum_pool #(
    parameter H = 1,
    parameter W = 1,
    parameter CF = 1,
    parameter PE = 1,
    parameter KH = 1,
    parameter KW = 1,
    parameter SH = 1,
    parameter SW = 1,
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,
    parameter IN_BIPOLAR = 0,
    parameter OUT_BITS = 8
) (
    input wire clk,
    input wire rst,
    input wire [PE*IN_BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output reg [PE*OUT_BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    localparam OH = (H - KH) / SH + 1;
    localparam OW = (W - KW) / SW + 1;
    localparam NR = (KH + SH - 1) / SH;
    localparam NX = (KW + SW - 1) / SW;
    localparam OWB = KH == 1 ? NX : OW;
    localparam DEPTH = (OWB + NX - 1) / NX * CF;
    localparam AB = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam BANKS = NR * NX;
    localparam QB = $clog2((H > W ? H : W) + 1);
    localparam CB = $clog2(CF + 1);
    localparam SB = PE * OUT_BITS;  // a bank word

    // ----- the input word's position: y = qy*SH + ry, x = qx*SW + rx, qy % NR, qx % NX, qx / NX
    reg [QB-1:0] qy, ry, qx, rx, qy_mod, qx_mod, qx_div;
    reg [CB-1:0] cf;

    // ----- stage A: for each bank, the window of this word stored there, if any
    reg [BANKS-1:0] hit, first, last;
    reg [BANKS*AB-1:0] addr;
    integer rb, cb, dy, dx, ox_div;
    always @* begin
        for (rb = 0; rb < NR; rb = rb + 1) begin
            dy = qy_mod >= rb ? qy_mod - rb : qy_mod + NR - rb;  // the window's row is qy - dy
            for (cb = 0; cb < NX; cb = cb + 1) begin
                dx = qx_mod >= cb ? qx_mod - cb : qx_mod + NX - cb;  // its column qx - dx
                ox_div = dx > qx_mod ? qx_div - 1 : qx_div;           // (qx - dx) / NX
                hit[rb*NX + cb] = dy <= qy && qy - dy < OH && dy * SH + ry < KH &&
                                  dx <= qx && qx - dx < OW && dx * SW + rx < KW;
                first[rb*NX + cb] = dy * SH + ry == 0 && dx * SW + rx == 0;
                last[rb*NX + cb] = dy * SH + ry == KH - 1 && dx * SW + rx == KW - 1;
                addr[(rb*NX + cb)*AB +: AB] = (KH == 1 ? 0 : ox_div) * CF + cf;
            end
        end
    end

    wire en = !(out_valid && !out_ready);
    wire go = en && in_valid;
    assign in_ready = en;

    reg a_valid;
    reg [PE*IN_BITS-1:0] a_x;
    reg [BANKS-1:0] a_hit, a_first, a_last;
    reg [BANKS*AB-1:0] a_addr;
    wire [BANKS*SB-1:0] sums;  // stage B: each bank's window with this word added

    // the input lanes as OUT_BITS-bit values (sign-extended, or truncated: sums wrap, as their type holds them)
    wire [PE*OUT_BITS-1:0] a_lanes;

    qnnflow_lane #(.LANES(PE), .BITS(IN_BITS), .SIGNED(IN_SIGNED), .BIPOLAR(IN_BIPOLAR), .V_BITS(OUT_BITS))
        decode (.raw(a_x), .value(a_lanes));

    genvar k, p;
    generate
        for (k = 0; k < BANKS; k = k + 1) begin : bank
            reg [SB-1:0] sum [0:DEPTH-1];
            reg [SB-1:0] read;     // the sum at a_addr as A read it
            reg [SB-1:0] written;  // or as B wrote it in the cycle A read it (fwd)
            reg fwd;
            wire write = a_valid && a_hit[k] && !a_last[k];
            always @(posedge clk) begin
                if (en && write) sum[a_addr[k*AB +: AB]] <= sums[k*SB +: SB];
                if (en) read <= sum[addr[k*AB +: AB]];
                if (en) begin
                    // consecutive words meet at one address only with one word a pixel
                    fwd <= CF == 1 && write && a_addr[k*AB +: AB] == addr[k*AB +: AB];
                    written <= sums[k*SB +: SB];
                end
            end
            wire [SB-1:0] base = a_first[k] ? {SB{1'b0}} : fwd ? written : read;
            for (p = 0; p < PE; p = p + 1) begin : lane
                assign sums[k*SB + p*OUT_BITS +: OUT_BITS] = base[p*OUT_BITS +: OUT_BITS] +
                                                              a_lanes[p*OUT_BITS +: OUT_BITS];
            end
        end
    endgenerate

    reg [SB-1:0] finished;
    integer j;
    always @* begin
        finished = {SB{1'b0}};
        for (j = 0; j < BANKS; j = j + 1)
            if (a_hit[j] && a_last[j]) finished = finished | sums[j*SB +: SB];
    end

    always @(posedge clk) begin
        if (rst) begin
            qy <= 0;
            ry <= 0;
            qx <= 0;
            rx <= 0;
            qy_mod <= 0;
            qx_mod <= 0;
            qx_div <= 0;
            cf <= 0;
            a_valid <= 1'b0;
            out_valid <= 1'b0;
        end else if (en) begin
            a_valid <= go;
            out_valid <= a_valid && (a_hit & a_last) != 0;
            if (go) begin
                if (cf != CF - 1) begin
                    cf <= cf + 1'b1;
                end else begin
                    cf <= 0;
                    if (qx * SW + rx != W - 1) begin
                        if (rx != SW - 1) begin
                            rx <= rx + 1'b1;
                        end else begin
                            rx <= 0;
                            qx <= qx + 1'b1;
                            qx_mod <= qx_mod == NX - 1 ? 0 : qx_mod + 1'b1;
                            qx_div <= qx_mod == NX - 1 ? qx_div + 1'b1 : qx_div;
                        end
                    end else begin
                        rx <= 0;
                        qx <= 0;
                        qx_mod <= 0;
                        qx_div <= 0;
                        if (qy * SH + ry != H - 1) begin
                            if (ry != SH - 1) begin
                                ry <= ry + 1'b1;
                            end else begin
                                ry <= 0;
                                qy <= qy + 1'b1;
                                qy_mod <= qy_mod == NR - 1 ? 0 : qy_mod + 1'b1;
                            end
                        end else begin
                            ry <= 0;
                            qy <= 0;
                            qy_mod <= 0;
                        end
                    end
                end
            end
        end
        if (en && go) begin
            a_x <= in_data;
            a_hit <= hit;
            a_first <= first;
            a_last <= last;
            a_addr <= addr;
        end
        if (en && a_valid) out_data <= finished;
    end
endmodule
