# started on Fri May 16 23:03:33 2025


 Performance counter stats for 'bin/main.parallel2 3000 3000 3000 perf':

    39.293.025.980      cpu_atom/cycles/                 #    1,991 GHz                         (58,73%)
    36.246.187.668      cpu_core/cycles/                 #    1,837 GHz                         (57,96%)
    21.898.364.234      cpu_atom/instructions/           #    0,56  insn per cycle              (68,57%)
    30.590.108.859      cpu_core/instructions/           #    0,84  insn per cycle              (65,27%)
         19.730,56 msec task-clock                       #    9,826 CPUs utilized             
         19.728,45 msec cpu-clock                        #    9,825 CPUs utilized             
             2.909      context-switches                 #  147,436 /sec                      
       185.818.842      cpu_atom/cache-misses/           #    8,91% of all cache refs           (68,63%)
       179.538.031      cpu_core/cache-misses/           #   14,86% of all cache refs           (65,29%)
     2.086.635.922      cpu_atom/cache-references/       #  105,757 M/sec                       (68,63%)
     1.208.235.205      cpu_core/cache-references/       #   61,237 M/sec                       (65,26%)
       806.675.656      cpu_atom/branches/               #   40,885 M/sec                       (68,61%)
     1.472.270.809      cpu_core/branches/               #   74,619 M/sec                       (65,30%)
           773.197      cpu_atom/branch-misses/          #    0,10% of all branches             (68,57%)
         1.480.625      cpu_core/branch-misses/          #    0,10% of all branches             (65,28%)
       755.184.346      cpu_atom/dTLB-load-misses/       #    7,66% of all dTLB cache accesses  (68,63%)
       907.424.077      cpu_core/dTLB-load-misses/       #    7,43% of all dTLB cache accesses  (65,36%)
     9.861.084.386      cpu_atom/dTLB-loads/             #  499,787 M/sec                       (68,68%)
    12.208.712.947      cpu_core/dTLB-loads/             #  618,772 M/sec                       (65,30%)
           106.492      cpu_atom/LLC-load-misses/        #    0,02% of all LL-cache accesses    (58,78%)
        81.526.033      cpu_core/LLC-load-misses/        #   12,78% of all LL-cache accesses    (65,33%)
       528.224.729      cpu_atom/LLC-loads/              #   26,772 M/sec                       (58,74%)
       637.699.143      cpu_core/LLC-loads/              #   32,320 M/sec                       (65,30%)

       2,007931346 seconds time elapsed

      19,600099000 seconds user
       0,124486000 seconds sys


