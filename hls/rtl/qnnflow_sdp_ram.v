// Simple dual-port RAM: one write port, one synchronous read port (rdata follows raddr by one cycle
// while re is high, and holds otherwise), so that synthesis may bind it as STYLE says: "block"
// (BRAM), "distributed" (LUT RAM), "ultra" (UltraRAM; block RAM for Yosys, whose xc7 library has
// none) or "auto" (the tool's choice).  A read and a write of the same address in one cycle are
// never issued by its users (the read returns the old word).
module qnnflow_sdp_ram #(
    parameter WIDTH = 8,
    parameter DEPTH = 2,
    parameter STYLE = "auto"
) (
    input wire clk,
    input wire we,
    input wire [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] waddr,
    input wire [WIDTH-1:0] wdata,
    input wire re,
    input wire [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] raddr,
    output reg [WIDTH-1:0] rdata
);
    generate
        if (STYLE == "block") begin : block_ram
            (* ram_style = "block" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
            always @(posedge clk) begin
                if (we) mem[waddr] <= wdata;
                if (re) rdata <= mem[raddr];
            end
        end else if (STYLE == "distributed") begin : distributed_ram
            (* ram_style = "distributed" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
            always @(posedge clk) begin
                if (we) mem[waddr] <= wdata;
                if (re) rdata <= mem[raddr];
            end
        end else if (STYLE == "ultra") begin : ultra_ram
`ifdef YOSYS
            (* ram_style = "block" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
`else
            (* ram_style = "ultra" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
`endif
            always @(posedge clk) begin
                if (we) mem[waddr] <= wdata;
                if (re) rdata <= mem[raddr];
            end
        end else begin : auto_ram
            reg [WIDTH-1:0] mem [0:DEPTH-1];
            always @(posedge clk) begin
                if (we) mem[waddr] <= wdata;
                if (re) rdata <= mem[raddr];
            end
        end
    endgenerate
endmodule
