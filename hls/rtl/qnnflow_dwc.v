// Stream width converter (StreamingDataWidthConverter, hls/nodes/dwc.py) and port adapter: the
// same bits in the same order, IN_W-bit words in, OUT_W-bit words out, IMAGE_BITS bits per image
// (streams.hpp's repack).  An input word past the image's bits is read whole and its extra bits
// dropped; the image's last output word is zero padded and flagged by out_last (TLAST on the
// output port).  An in+out-bit shift register holds `have` bits; a word is read whenever it fits
// beside the bits staying this cycle, so reading and writing overlap.
module qnnflow_dwc #(
    parameter IN_W = 8,
    parameter OUT_W = 8,
    parameter IMAGE_BITS = 8
) (
    input wire clk,
    input wire rst,
    input wire [IN_W-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output wire [OUT_W-1:0] out_data,
    output wire out_valid,
    input wire out_ready,
    output wire out_last
);
    localparam CAP = IN_W + OUT_W;
    localparam HB = $clog2(CAP + 1);
    localparam LB = $clog2((IMAGE_BITS > IN_W ? IMAGE_BITS : IN_W) + 1);

    reg [CAP-1:0] held;   // the bits read and not yet written, oldest at bit 0; zero above `have`
    reg [HB-1:0] have;
    reg [LB-1:0] left;    // bits of the current image still to read

    wire all_read = left == 0;
    wire [LB-1:0] take = (left < IN_W) ? left : IN_W;
    wire [IN_W-1:0] fresh = in_data & ~({IN_W{1'b1}} << take);

    assign out_valid = (have >= OUT_W) || (all_read && have != 0);
    assign out_data = held[OUT_W-1:0];
    assign out_last = all_read && have <= OUT_W;
    wire pop = out_valid && out_ready;
    wire [HB-1:0] kept = !pop ? have : (have > OUT_W ? have - OUT_W : {HB{1'b0}});
    assign in_ready = !all_read && kept + IN_W <= CAP;  // room once this cycle's word (if any) has left
    wire push = in_valid && in_ready;
    wire [CAP-1:0] shifted = pop ? (held >> OUT_W) : held;

    always @(posedge clk) begin
        if (rst) begin
            held <= 0;
            have <= 0;
            left <= IMAGE_BITS;
        end else begin
            held <= push ? (shifted | ({{OUT_W{1'b0}}, fresh} << kept)) : shifted;
            have <= push ? kept + take : kept;
            if (push) left <= left - take;
            else if (pop && out_last) left <= IMAGE_BITS;
        end
    end
endmodule
