// Mark areas as an annotator would in ImageJ: a nucleus, an unlabelled area put in ROI group 2
// (its name says nothing), and a region named "Region 1" with no group; save the ROI set and
// each ROI filled into its own slice (255 inside). Arguments: "ROISET|OUT.tif"
parts = split(getArgument(), "|");
setBatchMode(true);
newImage("masks", "8-bit black", 120, 90, 3);
roiManager("reset");
makePolygon(10, 10, 30, 12, 26, 30, 8, 26);
roiManager("add");
makeRectangle(50, 40, 40, 30);
Roi.setGroup(2);
roiManager("add");
makePolygon(0, 50, 40, 50, 40, 89, 0, 89);
roiManager("add");
names = newArray("n1", "unknown area", "Region 1");
for (i = 0; i < 3; i++) {
    roiManager("select", i);
    roiManager("rename", names[i]);
    setSlice(i + 1);
    setColor(255);
    fill();
}
run("Select None");
roiManager("deselect");
roiManager("Save", parts[0]);
saveAs("Tiff", parts[1]);
