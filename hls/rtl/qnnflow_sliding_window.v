// Sliding window unit (ConvolutionInputGenerator, hls/nodes/sliding_window.py, include/sliding_window.hpp).
//
// In: an H x W image of CH channels, NHWC, CF = CH/SIMD words of SIMD elements per pixel.  Out: for
// each output pixel (oy, ox) its KH x KW window at input (oy*SH, ox*SW), elements (ky, kx, ch) with
// ch fastest, KH*KW*KCF words of SIMD elements; DW=1 (depthwise): (ch, ky, kx) with kx fastest,
// KCF words of SIMD whole windows, lane (s*KH + ky)*KW + kx.  Only the KCF channel words listed in
// KEPT are written out (PRUNED=1: a $readmemh file of KCF ascending word indices; else all CF).
//
// The HLS kernel's schedule: a line buffer of NB = KH + SH rows, input row r in slot r % NB (slots
// restart at 0 every image).  Phase 0 reads the first KH rows; phase 1 + oy writes output row oy's
// OW*KH*KW*KCF words (DW: OW*KCF) from the KH slots starting at row oy*SH while it reads the next SH
// input rows (fewer at the bottom) into the other slots.  Reading and writing run independently
// within a phase, a phase ends when both are done: KH*W*CF + sum over oy of max(reads, writes)
// cycles an image at full speed, as ConvolutionInputGenerator.cycles() models.
//
// Memories as the HLS kernel partitions them: one per row slot and bank (BANKS = KW in DW mode, pixel
// x in bank x % KW, so that a window's KW columns are read at once; else 1), ceil(W/BANKS)*CF words of
// SIMD*BITS bits, bound as RAM_STYLE says (qnnflow_sdp_ram).  Output path: addresses (stage A), the
// memories' synchronous read (stage D), the output register; all stall together while D holds a word
// the full output register cannot take.
module qnnflow_sliding_window #(
    parameter KH = 3,
    parameter KW = 3,
    parameter CH = 1,
    parameter SIMD = 1,
    parameter BITS = 1,
    parameter H = 3,
    parameter W = 3,
    parameter OH = 1,
    parameter OW = 1,
    parameter SH = 1,
    parameter SW = 1,
    parameter DW = 0,
    parameter KCF = 1,
    parameter PRUNED = 0,
    parameter KEPT = "",
    parameter RAM_STYLE = "auto"
) (
    input wire clk,
    input wire rst,
    input wire [SIMD*BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output reg [(DW != 0 ? SIMD*KH*KW : SIMD)*BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    localparam CF = CH / SIMD;
    localparam XW = SIMD * BITS;
    localparam NB = KH + SH;
    localparam BANKS = DW != 0 ? KW : 1;
    localparam DEPTH = (W + BANKS - 1) / BANKS * CF;
    localparam ROW = W * CF;
    localparam WRITES = DW != 0 ? OW * KCF : OW * KH * KW * KCF;
    localparam AW = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam RLW = $clog2(NB * ROW + 1);
    localparam WLW = $clog2(WRITES + 1);
    localparam SLW = $clog2(NB);  // NB >= 2
    localparam BKW = BANKS > 1 ? $clog2(BANKS) : 1;
    localparam KFW = KCF > 1 ? $clog2(KCF) : 1;
    localparam CFW = CF > 1 ? $clog2(CF) : 1;
    localparam YW = $clog2(H + 1) + 1;
    localparam XCW = $clog2(W + 1);
    localparam KXW = $clog2(KW + 1);
    localparam KYW = $clog2(KH + 1);

    // ----- phases
    reg fill;                 // phase 0: the first KH rows
    reg [YW-1:0] oy;          // output row of the phase (when !fill)
    reg [YW-1:0] next_row;    // input rows scheduled so far this image
    reg [SLW-1:0] top;        // slot of input row oy*SH
    reg [RLW-1:0] rd_left;    // input words this phase still reads
    reg [WLW-1:0] wr_left;    // output words this phase still issues
    wire en;                  // the output path advances
    wire rd_fire = in_valid && in_ready;
    wire issue = en && wr_left != 0;
    assign in_ready = rd_left != 0;
    wire rd_done = rd_left == 0 || (rd_left == 1 && rd_fire);
    wire wr_done = wr_left == 0 || (wr_left == 1 && issue);
    wire phase_end = rd_done && wr_done;
    wire last_row = !fill && oy == OH - 1;
    // rows read in the coming output-row phase: SH, or those left below the last window
    wire [YW-1:0] rows_left = H - next_row;
    wire [YW-1:0] rows_next = rows_left < SH ? rows_left : SH;
    wire [SLW:0] top_step = top + SH;

    // ----- input side: row slot, bank, address
    reg [SLW-1:0] wslot;
    reg [BKW-1:0] wbank;
    reg [AW-1:0] wbase;       // (column / BANKS) * CF
    reg [CFW-1:0] wcf;
    reg [XCW-1:0] wcol;

    // ----- output side (stage A): the next output word's position
    reg [KFW-1:0] ocf;        // index into the kept channel words
    reg [KXW-1:0] kx;
    reg [KYW-1:0] ky;
    reg [SLW-1:0] rslot;      // slot of row oy*SH + ky
    reg [AW-1:0] xbase;       // standard: ox*SW*CF; DW: (ox*SW / KW) * CF
    reg [AW-1:0] kxoff;       // kx*CF
    reg [BKW-1:0] xr;         // DW: ox*SW % KW

    wire [CFW-1:0] kept_word;
    generate
        if (PRUNED != 0) begin : pruned
            reg [CFW-1:0] kept [0:KCF-1];
            initial $readmemh(KEPT, kept);
            assign kept_word = kept[ocf];
        end else begin : all_kept
            assign kept_word = ocf;
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            fill <= 1'b1;
            oy <= 0;
            next_row <= KH;
            top <= 0;
            rd_left <= KH * ROW;
            wr_left <= 0;
            wslot <= 0;
            wbank <= 0;
            wbase <= 0;
            wcf <= 0;
            wcol <= 0;
        end else begin
            if (rd_fire) begin
                rd_left <= rd_left - 1'b1;
                if (wcf == CF - 1) begin
                    wcf <= 0;
                    if (wcol == W - 1) begin
                        wcol <= 0;
                        wbank <= 0;
                        wbase <= 0;
                        wslot <= wslot == NB - 1 ? {SLW{1'b0}} : wslot + 1'b1;
                    end else begin
                        wcol <= wcol + 1'b1;
                        if (wbank == BANKS - 1) begin
                            wbank <= 0;
                            wbase <= wbase + CF;
                        end else begin
                            wbank <= wbank + 1'b1;
                        end
                    end
                end else begin
                    wcf <= wcf + 1'b1;
                end
            end
            if (issue) wr_left <= wr_left - 1'b1;
            if (phase_end) begin
                if (last_row) begin  // the next image: fill from slot 0
                    fill <= 1'b1;
                    next_row <= KH;
                    top <= 0;
                    rd_left <= KH * ROW;
                    wr_left <= 0;
                    wslot <= 0;
                end else begin
                    fill <= 1'b0;
                    oy <= fill ? {YW{1'b0}} : oy + 1'b1;
                    if (!fill) top <= top_step >= NB ? top_step - NB : top_step;
                    next_row <= next_row + rows_next;
                    rd_left <= rows_next * ROW;
                    wr_left <= WRITES;
                end
            end
        end
    end

    // stage A: the output word's position, restarted with every output row
    wire [SLW:0] rslot_step = rslot + 1'b1;
    wire [BKW:0] xr_step = xr + SW % KW;
    always @(posedge clk) begin
        if (rst || phase_end) begin
            ocf <= 0;
            kx <= 0;
            ky <= 0;
            xbase <= 0;
            kxoff <= 0;
            xr <= 0;
            // the coming phase's top slot
            rslot <= (rst || fill || last_row) ? {SLW{1'b0}} : (top_step >= NB ? top_step - NB : top_step);
        end else if (issue) begin
            if (ocf == KCF - 1) begin
                ocf <= 0;
                if (DW != 0) begin  // next output pixel
                    if (xr_step >= KW) begin
                        xr <= xr_step - KW;
                        xbase <= xbase + (SW / KW + 1) * CF;
                    end else begin
                        xr <= xr_step;
                        xbase <= xbase + SW / KW * CF;
                    end
                end else if (kx == KW - 1) begin
                    kx <= 0;
                    kxoff <= 0;
                    if (ky == KH - 1) begin  // next output pixel
                        ky <= 0;
                        rslot <= top;
                        xbase <= xbase + SW * CF;
                    end else begin
                        ky <= ky + 1'b1;
                        rslot <= rslot_step >= NB ? rslot_step - NB : rslot_step;
                    end
                end else begin
                    kx <= kx + 1'b1;
                    kxoff <= kxoff + CF;
                end
            end else begin
                ocf <= ocf + 1'b1;
            end
        end
    end

    // ----- the memories, stage D (their read registers) and the output register
    reg d_valid;
    reg [SLW-1:0] d_slot;     // standard: the row slot read; DW: the window's top slot
    reg [BKW-1:0] d_xr;       // DW: bank of the window's first column
    assign en = !(d_valid && out_valid && !out_ready);
    wire [NB*BANKS*XW-1:0] rdata;
    genvar r, b;
    generate
        for (r = 0; r < NB; r = r + 1) begin : slot
            for (b = 0; b < BANKS; b = b + 1) begin : bank
                // DW: bank b holds window column (b - xr) mod KW, one bank further when b < xr
                wire [AW-1:0] raddr = (DW != 0 && b < xr ? xbase + CF : xbase) + kxoff + kept_word;
                qnnflow_sdp_ram #(.WIDTH(XW), .DEPTH(DEPTH), .STYLE(RAM_STYLE)) ram (
                    .clk(clk), .we(rd_fire && wslot == r && wbank == b), .waddr(wbase + wcf), .wdata(in_data),
                    .re(en), .raddr(raddr), .rdata(rdata[(r*BANKS + b)*XW +: XW]));
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) d_valid <= 1'b0;
        else if (en) d_valid <= issue;
        if (en) begin
            d_slot <= DW != 0 ? top : rslot;
            d_xr <= xr;
        end
    end

    reg [(DW != 0 ? SIMD*KH*KW : SIMD)*BITS-1:0] word;
    integer s, wy, wx, ys, xb;
    always @* begin
        word = 0;
        if (DW != 0) begin
            for (wy = 0; wy < KH; wy = wy + 1) begin
                ys = d_slot + wy >= NB ? d_slot + wy - NB : d_slot + wy;
                for (wx = 0; wx < KW; wx = wx + 1) begin
                    xb = d_xr + wx >= KW ? d_xr + wx - KW : d_xr + wx;
                    for (s = 0; s < SIMD; s = s + 1)
                        word[((s*KH + wy)*KW + wx)*BITS +: BITS] = rdata[((ys*BANKS + xb)*SIMD + s)*BITS +: BITS];
                end
            end
        end else begin
            word = rdata[d_slot*XW +: XW];
        end
    end

    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (en && d_valid) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (en && d_valid) out_data <= word;
    end
endmodule
