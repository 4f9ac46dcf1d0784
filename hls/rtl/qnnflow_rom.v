// Parameter ROM: DEPTH words of WIDTH bits from the hex file INIT ($readmemh, one word a line),
// read synchronously (data follows addr by one cycle while en is high), so that synthesis may
// bind it as STYLE says: "block" (BRAM), "distributed" (LUT RAM / LUTs) or "auto" (the tool's
// choice).  The emitter passes the style its memory is costed as (cost.bound_style).
module qnnflow_rom #(
    parameter WIDTH = 8,
    parameter DEPTH = 1,
    parameter INIT = "",
    parameter STYLE = "auto"
) (
    input wire clk,
    input wire en,
    input wire [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] addr,
    output reg [WIDTH-1:0] data
);
    generate
        if (STYLE == "block") begin : block_rom
            (* rom_style = "block" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
            initial $readmemh(INIT, mem);
            always @(posedge clk) if (en) data <= mem[addr];
        end else if (STYLE == "distributed") begin : distributed_rom
`ifdef YOSYS  // Yosys maps no LUT RAM without a write port: a distributed ROM is logic there
            (* rom_style = "logic" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
`else
            (* rom_style = "distributed" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
`endif
            initial $readmemh(INIT, mem);
            always @(posedge clk) if (en) data <= mem[addr];
        end else begin : auto_rom
            reg [WIDTH-1:0] mem [0:DEPTH-1];
            initial $readmemh(INIT, mem);
            always @(posedge clk) if (en) data <= mem[addr];
        end
    endgenerate
endmodule
