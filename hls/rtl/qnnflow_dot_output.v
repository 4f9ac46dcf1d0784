// The output stage of a dot-product unit (qnnflow_mvau, qnnflow_vvau): the PE accumulators of an
// output fold, activated (HAS_ACT: out = ACT_VAL + #{t : acc >= T[t]}, qnnflow_activation, with the
// ROM word at addr holding the NT slots of the fold's PE outputs) or passed on as their low OUT_BITS,
// into the output register when `fire` (the fold's last accumulation) while `en`.  The ROM reads
// synchronously, so addr is given a cycle before the values it activates.
module qnnflow_dot_output #(
    parameter PE = 1,
    parameter ACC_BITS = 16,
    parameter OUT_BITS = 16,
    parameter HAS_ACT = 0,
    parameter NT = 1,
    parameter T_BITS = 16,
    parameter ACT_VAL = 0,
    parameter DEPTH = 1,
    parameter THRESHOLDS = "",
    parameter RAM_STYLE = "auto"
) (
    input wire clk,
    input wire rst,
    input wire en,
    input wire [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] addr,
    input wire [PE*ACC_BITS-1:0] values,
    input wire fire,
    output reg [PE*OUT_BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    wire [PE*OUT_BITS-1:0] result;
    generate
        if (HAS_ACT != 0) begin : activate
            wire [PE*NT*T_BITS-1:0] t;
            qnnflow_rom #(.WIDTH(PE*NT*T_BITS), .DEPTH(DEPTH), .INIT(THRESHOLDS), .STYLE(RAM_STYLE))
                thresholds (.clk(clk), .en(en), .addr(addr), .data(t));
            qnnflow_activation #(.LANES(PE), .V_BITS(ACC_BITS), .NT(NT), .T_BITS(T_BITS), .OUT_BITS(OUT_BITS),
                                 .ACT_VAL(ACT_VAL))
                activation (.values(values), .thresholds(t), .out_data(result));
        end else begin : accumulator
            genvar q;
            for (q = 0; q < PE; q = q + 1) begin : lane
                assign result[q*OUT_BITS +: OUT_BITS] = values[q*ACC_BITS +: OUT_BITS];
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (en && fire) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (en && fire) out_data <= result;
    end
endmodule
