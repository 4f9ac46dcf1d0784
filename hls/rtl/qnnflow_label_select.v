// LabelSelect (hls/nodes/label_select.py, include/label_select.hpp): the indices of the K largest
// of LABELS values (two's complement, unsigned or BIPOLAR), largest first, one index a word; equal values keep the lower index first.
// LABELS/PE words are read (PE values a cycle, inserted into a sorted list of K (value, index)
// registers behind every entry at least as large), then the K indices are written: LABELS/PE + K
// cycles an image.
module qnnflow_label_select #(
    parameter LABELS = 2,
    parameter PE = 1,
    parameter K = 1,
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
    output wire [OUT_BITS-1:0] out_data,
    output wire out_valid,
    input wire out_ready
);
    localparam WORDS = LABELS / PE;
    localparam WB = WORDS > 1 ? $clog2(WORDS) : 1;
    localparam KB = K > 1 ? $clog2(K) : 1;
    localparam IB = LABELS > 1 ? $clog2(LABELS) : 1;
    localparam VB = IN_BITS + 1;  // values sign- or zero-extended

    reg [K*VB-1:0] best;
    reg [K*IB-1:0] index;
    reg [K-1:0] held;
    reg reading;
    reg [WB-1:0] word;
    reg [KB-1:0] k_out;

    assign in_ready = reading;
    assign out_valid = !reading;
    assign out_data = index[k_out*IB +: IB];

    wire [PE*VB-1:0] lanes;  // the word's values
    qnnflow_lane #(.LANES(PE), .BITS(IN_BITS), .SIGNED(IN_SIGNED), .BIPOLAR(IN_BIPOLAR), .V_BITS(VB))
        decode (.raw(in_data), .value(lanes));

    // the list after inserting this word's PE values
    reg [K*VB-1:0] nb;
    reg [K*IB-1:0] ni;
    reg [K-1:0] nh;
    reg signed [VB-1:0] v;
    reg [IB:0] pos;
    integer p, k;
    always @* begin
        nb = best;
        ni = index;
        nh = (word == 0) ? {K{1'b0}} : held;
        for (p = 0; p < PE; p = p + 1) begin
            v = lanes[p*VB +: VB];
            pos = 0;
            for (k = 0; k < K; k = k + 1)
                if (nh[k] && $signed(nb[k*VB +: VB]) >= v) pos = pos + 1'b1;
            for (k = K - 1; k >= 0; k = k - 1) begin
                if (k > pos) begin  // k >= 1; (k > 0 ? k - 1 : 0) keeps unreached selects in range
                    nb[k*VB +: VB] = nb[(k > 0 ? k - 1 : 0)*VB +: VB];
                    ni[k*IB +: IB] = ni[(k > 0 ? k - 1 : 0)*IB +: IB];
                    nh[k] = nh[k > 0 ? k - 1 : 0];
                end else if (k == pos) begin
                    nb[k*VB +: VB] = v;
                    ni[k*IB +: IB] = word * PE + p;
                    nh[k] = 1'b1;
                end
            end
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            reading <= 1'b1;
            word <= 0;
            k_out <= 0;
            held <= 0;
        end else if (reading) begin
            if (in_valid) begin
                best <= nb;
                index <= ni;
                held <= nh;
                if (word == WORDS - 1) begin
                    word <= 0;
                    reading <= 1'b0;
                end else begin
                    word <= word + 1'b1;
                end
            end
        end else if (out_ready) begin
            if (k_out == K - 1) begin
                k_out <= 0;
                reading <= 1'b1;
            end else begin
                k_out <= k_out + 1'b1;
            end
        end
    end
endmodule
