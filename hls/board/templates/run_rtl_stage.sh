# The RTL of ../rtl goes to Vivado as it is: nothing to synthesise before it.
