// Outline five nuclei with ImageJ's own ROI types, save them as a ROI set and fill each into
// a 16-bit label image (value = position in the set). Arguments: "ROISET|OUT.tif"
parts = split(getArgument(), "|");
setBatchMode(true);
newImage("labels", "16-bit black", 128, 128, 1);
roiManager("reset");
makeOval(10, 10, 24, 16);
roiManager("add");
makePolygon(60, 10, 90, 14, 84, 40, 58, 34);
roiManager("add");
makeSelection("freehand", newArray(20, 30, 42, 36, 30, 18), newArray(70, 62, 80, 98, 102, 96));
roiManager("add");
makeEllipse(70, 80, 110, 110, 0.6);
roiManager("add");
makeRectangle(100, 20, 18, 12);
roiManager("add");
n = roiManager("count");
for (i = 0; i < n; i++) {
    roiManager("select", i);
    roiManager("rename", "n" + (i + 1));
    setColor(i + 1);
    fill();
}
run("Select None");
roiManager("deselect");
roiManager("Save", parts[0]);
saveAs("Tiff", parts[1]);
