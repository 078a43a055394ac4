// The support of cases/madelung_log_coherent_2d.toml's coherent state over t in [0, 2]:
// written by nhj.support.support_geo (regenerate with it when the state changes).
// The support of a Gaussian state over t in [0, 2]: the union of its
// level sets p/max p = 1e-06 at 6 times (nhj.support.support_geo).
DefineConstant[ h = {0.5, Name "Parameters/h"} ];
SetFactory("OpenCASCADE");
Disk(1) = {1.5, -0.5, 0, 3.71692219, 3.03485426};
Disk(2) = {1.26285146, -0.0765856162, 0, 3.71692219, 3.03485426};
Disk(3) = {0.914685863, 0.228301543, 0, 3.71692219, 3.03485426};
Disk(4) = {0.487194427, 0.462084957, 0, 3.71692219, 3.03485426};
Disk(5) = {-0.0363019652, 0.593145053, 0, 3.71692219, 3.03485426};
Disk(6) = {-0.624220255, 0.542036251, 0, 3.71692219, 3.03485426};
BooleanUnion(7) = { Surface{1}; Delete; }{ Surface{2:6}; Delete; };
Physical Surface("domain", 1) = {7};
Physical Curve("boundary", 2) = Boundary{ Surface{7}; };
Mesh.MeshSizeMin = h;
Mesh.MeshSizeMax = h;
